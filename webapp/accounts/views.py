"""The site's login and logout, and the page where a user issues and revokes their API tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.accounts import selectors, services
from webapp.accounts.models import ApiToken


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):  # POST only (Django's own rule): a link cannot log anyone out
    pass


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    user = request.user
    assert isinstance(user, User), "login_required lets only signed-in users in"
    issued = None
    if request.method == "POST":
        issued = services.issue_token(user, request.POST.get("name", "").strip())
        messages.success(request, "Token issued: copy it now, it is not shown again.")
    return render(
        request,
        "accounts/tokens.html",
        {"tokens": selectors.tokens_of(user), "issued": issued},
    )


@login_required
@require_POST
def revoke(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(ApiToken, pk=pk, user=request.user)
    services.revoke_token(record)
    messages.success(request, f"Token {record.prefix}… revoked.")
    return redirect("accounts:tokens")
