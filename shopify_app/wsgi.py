"""The WSGI entry point for gunicorn (Procfile `web:`)."""
from shopify_app import create_app

app = create_app()
