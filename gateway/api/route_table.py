"""Every API route, declared once: it drives registration, the key check and the OpenAPI.

To add a route: write the handler in a ``routes_*`` module (it reads ``request[CALLER]``, no
decorator) and add one ``Route`` below. The role walk in tests/test_api_roles.py then covers it.
"""

from __future__ import annotations

from gateway.api import routes_audit as audit
from gateway.api import routes_binding as binding
from gateway.api import routes_console as console_data
from gateway.api import routes_events as events
from gateway.api import routes_follow_up as follow_up
from gateway.api import routes_jobs as jobs
from gateway.api import routes_messages as messages
from gateway.api import routes_notices as notices
from gateway.api import routes_ops as ops
from gateway.api import routes_optouts as optouts
from gateway.api import routes_stats as stats
from gateway.api import routes_templates as templates
from gateway.api import routes_voice as voice
from gateway.api.models import (
    AccidentAlert,
    BindingIn,
    BindingRequestIn,
    BindingVerifyIn,
    FollowUpIn,
    Message,
    ParkingNotice,
    ReminderJobIn,
)
from gateway.api.routing import ANY_KEY, PUBLIC, Route
from gateway.console import routes as console

JOB_ROLES = ("command_center", "back_office")

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/accident-alerts",
        notices.post_accident_alert,
        "Send an accident procedure by SMS",
        ("command_center",),
        body=AccidentAlert,
        ok_status=202,
    ),
    Route(
        "POST",
        "/v1/accident-alerts/preview",
        console_data.accident_preview,
        "The SMS an accident alert would send (text, parts) and the reporter phone's check",
        ("command_center",),
        body=console_data.AccidentPreviewIn,
    ),
    Route(
        "GET",
        "/v1/accident-replies",
        console_data.accident_replies,
        "The latest replies to accident alerts (own alerts; admin all)",
        ("command_center",),
    ),
    Route(
        "GET",
        "/v1/events/stream",
        events.stream_events,
        "Server-sent events of the notices' status changes the key may see (Last-Event-ID)",
        ANY_KEY,
    ),
    Route(
        "POST",
        "/v1/messages",
        messages.post_message,
        "Send a templated or plain notice",
        ("command_center",),
        body=Message,
        ok_status=202,
    ),
    Route(
        "GET",
        "/v1/notices/{id}",
        notices.get_notice,
        "A notice and its history",
        ANY_KEY,
        own_object=True,
    ),
    Route(
        "POST",
        "/v1/reminder-jobs",
        jobs.post_reminder_job,
        "Bulk reminders: a JSON list, or a CSV upload (text/csv, options in the query)",
        JOB_ROLES,
        body=ReminderJobIn,
        ok_status=202,
    ),
    Route(
        "GET",
        "/v1/reminder-jobs",
        console_data.list_reminder_jobs,
        "The newest reminder jobs with their progress (own; admin all)",
        JOB_ROLES,
    ),
    Route(
        "GET",
        "/v1/reminder-jobs/{id}",
        jobs.get_reminder_job,
        "A job's progress, counts per status",
        JOB_ROLES,
        own_object=True,
    ),
    Route(
        "POST",
        "/v1/reminder-jobs/{id}/cancel",
        jobs.cancel_reminder_job,
        "Stop a job",
        JOB_ROLES,
        own_object=True,
    ),
    Route(
        "POST",
        "/v1/parking-notices",
        voice.post_parking_notice,
        "Call a badly parked car's owner",
        ("officer",),
        body=ParkingNotice,
        ok_status=202,
    ),
    # Not own_object: another officer's key is told 403 (the notice exists; it is not theirs).
    Route(
        "POST",
        "/v1/parking-notices/{id}/follow-up",
        follow_up.post_follow_up,
        "What the officer found when the time was up: moved, or a warning slip",
        ("officer",),
        body=FollowUpIn,
    ),
    Route(
        "GET",
        "/v1/stats",
        stats.get_stats,
        "The seed's measures per local day or week: parking, accidents, reminders",
        ("command_center",),
    ),
    Route(
        "GET",
        "/v1/admin/audit",
        audit.get_audit,
        "Who notified whom: notices created and follow-ups (filters by phone or plate audited)",
        ("admin",),
    ),
    # A binding request is the business of the key that opened it (and admins): another
    # binding_agent key is told 404, as for a reference that does not exist.
    Route(
        "POST",
        "/v1/binding-requests",
        binding.post_binding_request,
        "Open a binding request; the phone gets a one-time code by SMS",
        ("binding_agent",),
        body=BindingRequestIn,
        ok_status=201,
    ),
    Route(
        "GET",
        "/v1/binding-requests/{ref}",
        binding.get_binding_request,
        "A binding request",
        ("binding_agent",),
        own_object=True,
    ),
    Route(
        "POST",
        "/v1/binding-requests/{ref}/verify",
        binding.verify_binding_request,
        "Confirm a binding request with the code (the website's path)",
        ("binding_agent",),
        body=BindingVerifyIn,
        own_object=True,
    ),
    Route(
        "POST",
        "/v1/binding-requests/{ref}/cancel",
        binding.cancel_binding_request,
        "Cancel a pending binding request",
        ("binding_agent",),
        own_object=True,
    ),
    Route(
        "GET",
        "/v1/admin/binding-audit",
        binding.get_binding_audit,
        "The bindings' audit trail",
        ("admin",),
    ),
    Route(
        "POST",
        "/v1/bindings",
        binding.post_binding,
        "Bind a plate directly (admins)",
        ("admin",),
        body=BindingIn,
        ok_status=201,
    ),
    Route(
        "GET",
        "/v1/bindings/{plate}",
        binding.get_binding,
        "A plate's binding",
        ("binding_agent",),
    ),
    Route(
        "DELETE",
        "/v1/bindings/{plate}",
        binding.delete_binding,
        "Remove a binding (admins)",
        ("admin",),
        ok_status=204,
    ),
    Route(
        "GET",
        "/v1/suspected-cloned-plates",
        voice.suspected_clones,
        "Plates disputed by their owners",
        ("command_center",),
    ),
    Route(
        "GET",
        "/v1/admin/opt-outs",
        optouts.list_opt_outs,
        "Numbers opted out of reminders",
        ("admin",),
    ),
    Route(
        "POST",
        "/v1/admin/opt-outs",
        optouts.add_opt_out,
        "Opt a number out of reminders",
        ("admin",),
        body=optouts.OptOutIn,
        ok_status=201,
    ),
    Route(
        "DELETE",
        "/v1/admin/opt-outs/{phone}",
        optouts.remove_opt_out,
        "Reverse an opt-out",
        ("admin",),
        ok_status=204,
    ),
    Route(
        "GET",
        "/v1/admin/webhook-dead-letters",
        ops.webhook_dead_letters,
        "Callbacks given up",
        ("admin",),
    ),
    Route(
        "GET",
        "/v1/admin/unmatched-receipts",
        ops.unmatched_receipts,
        "Delivery receipts that matched no sent message",
        ("admin",),
    ),
    Route("GET", "/healthz", ops.healthz, "Process is up", PUBLIC),
    Route("GET", "/readyz", ops.readyz, "Redis and SMPP bind state", PUBLIC),
    Route("GET", "/metrics", ops.metrics, "Prometheus metrics", PUBLIC),
    Route(
        "GET",
        "/v1/templates",
        templates.list_templates,
        "The templates: params, channels, text, SMS parts",
        ANY_KEY,
    ),
    Route("GET", "/v1/templates/{name}", templates.get_template, "One template", ANY_KEY),
    Route("GET", "/openapi.json", ops.openapi, "This document", PUBLIC),
    # The console: its page and files, and its session (docs/api.md, "Console").
    Route("GET", "/console", console.console_redirect, "The console (redirect)", PUBLIC),
    Route("GET", "/console/", console.console_page, "The command-centre console", PUBLIC),
    Route("GET", "/console/app.js", console.console_asset, "The console's script", PUBLIC),
    Route("GET", "/console/app.css", console.console_asset, "The console's styles", PUBLIC),
    Route("GET", "/console/i18n.js", console.console_asset, "The console's texts", PUBLIC),
    Route("GET", "/console/panels.js", console.console_asset, "The console's panels", PUBLIC),
    Route(
        "GET",
        "/console/session",
        console.get_session,
        "The console session: who is logged in and its CSRF token, or the login form's token",
        PUBLIC,
    ),
    Route(
        "POST",
        "/console/login",
        console.login,
        "Exchange an API key (command_center, admin) for a console session cookie",
        PUBLIC,
        body=console.LoginIn,
    ),
    Route(
        "POST",
        "/console/logout",
        console.logout,
        "End the console session",
        ("command_center",),
    ),
)
