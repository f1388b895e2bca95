"""The JSON API under ``/api/``, on django-ninja: pydantic schemas declared once, from which the OpenAPI 3.1
document (``/api/schema/``) and the Swagger UI (``/api/docs/``) are generated.

It sits above the apps: its routers call their services and selectors, and no app imports it (the search
page shares the search's schemas and error table from ``webapp.search``, not from here).
"""
