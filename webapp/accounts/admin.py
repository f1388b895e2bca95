from django.contrib import admin

from webapp.accounts.models import ApiToken
from webapp.accounts.services import revoke_token


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "user__username", "prefix")
    readonly_fields = ("user", "name", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: object) -> bool:  # issued on the tokens page or by the command
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: object, queryset: object) -> None:
        for record in queryset:  # type: ignore[attr-defined]
            revoke_token(record)
