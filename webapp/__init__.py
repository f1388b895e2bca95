"""The Django project of the landmark photo search product."""
