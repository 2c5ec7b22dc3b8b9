"""Skilvís: Shopify returns and exchanges become credit invoices in Payday."""
from __future__ import annotations

import logging

from flask import Flask

from . import config as config_module
from . import localservers, logs, security


def create_app(settings: config_module.Settings | None = None) -> Flask:
    if settings is None:
        settings = config_module.load()
        if not settings.production and not (settings.database_url and settings.redis_url):
            # Local development without DATABASE_URL/REDIS_URL: embedded servers under .data/.
            localservers.fill_environment()
            settings = config_module.load()
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.session_secret,
        SESSION_COOKIE_SECURE=settings.app_url.startswith("https://"),
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logs.install()   # no log line carries a token or a secret

    from .shopify_admin import AdminClient

    app.extensions["shopify_admin"] = AdminClient(settings)

    from . import api, auth, cli, health, home, i18n, webhooks

    i18n.init_app(app)
    from .reasons import explain
    app.jinja_env.globals["explain_reason"] = explain   # templates/_reason.html's reason_block
    for blueprint in (auth.bp, cli.bp, health.bp, home.bp, api.bp):
        app.register_blueprint(blueprint)

    # sandbox blueprint registered below
    app.config["SKILVIS_SANDBOX"] = settings.sandbox
    if settings.sandbox:
        from .sandbox import panel

        app.register_blueprint(panel.bp)
    security.init_app(app)   # last: body limits and clean input first, headers on every response
    app.wsgi_app = webhooks.Intake(app.wsgi_app, settings)   # webhooks answered before Flask
    return app
