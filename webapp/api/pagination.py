"""Page numbers for the list operations: ``?page=`` and ``?page_size=``, answered with the total count and
the links to the next and previous pages (null at either end), the filters of the request kept in them."""

from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest
from ninja import Field, Schema
from ninja.pagination import PaginationBase

__all__ = ["PageNumbers"]

MAX_PAGE_SIZE = 200


class PageNumbers(PaginationBase):
    class Input(Schema):
        page: int = Field(1, ge=1, le=1_000_000, description="1 is the first page")
        page_size: int = Field(50, ge=1, le=MAX_PAGE_SIZE)

    class Output(Schema):
        count: int = Field(ge=0, description="items on all pages together")
        next: str | None = Field(description="the next page's URL; null on the last page")
        previous: str | None = Field(description="the previous page's URL; null on the first page")
        items: list[Any]

    items_attribute = "items"

    def paginate_queryset(
        self, queryset: QuerySet[Any], pagination: Input, request: HttpRequest, **params: Any
    ) -> dict[str, Any]:
        count = self._items_count(queryset)
        start = (pagination.page - 1) * pagination.page_size
        end = start + pagination.page_size
        return {
            "count": count,
            "next": _link(request, pagination.page + 1) if end < count else None,
            "previous": _link(request, min(pagination.page - 1, _last_page(count, pagination.page_size)))
            if pagination.page > 1
            else None,
            "items": list(queryset[start:end]),
        }


def _last_page(count: int, size: int) -> int:
    return max(1, -(-count // size))


def _link(request: HttpRequest, page: int) -> str:
    query = request.GET.copy()
    query["page"] = str(page)
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
