"""gunicorn's settings for the web process (Procfile `web:`, and `make run`'s launcher).

No log line may carry a token: embedded page loads bring the App Bridge ID token in the query
string and fetches bring it as a Bearer header. The access log names the path without its query
string (and no referer, which holds the embedding page's URL), and the logger class masks
tokens and secrets in whatever a format or an error message would still show (shopify_app/logs.py)."""
import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = 2
threads = 4
accesslog = "-"
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
logger_class = "shopify_app.logs.GunicornLogger"
