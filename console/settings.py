"""Settings for Secrets Console, read from the environment through django-environ.

Every variable is listed in the README's configuration table. A local `.env` (written by
`make run`) is read first, unless CONSOLE_ENV_FILE says otherwise; variables already set in the
process environment win over it. Every value is read literally (`console.environment`): no
`$NAME` references, and no error quotes a value.
"""

import datetime
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from console import environment
from console.environment import web_origin

BASE_DIR = Path(__file__).resolve().parent.parent

# The file of variables that `make run` writes for local use; its variables never override the
# process environment. CONSOLE_ENV_FILE="" reads none (`make serve-prod` sets it: a production
# server must not quietly take the development keys); a file named there must exist.
_ENV_FILE = environment.text("CONSOLE_ENV_FILE", default=None)
if _ENV_FILE is None:
    if (BASE_DIR / ".env").is_file():
        environ.Env.read_env(BASE_DIR / ".env")
elif _ENV_FILE:
    if not Path(_ENV_FILE).is_file():
        raise ImproperlyConfigured("CONSOLE_ENV_FILE names a file that does not exist (set it empty to read none).")
    environ.Env.read_env(Path(_ENV_FILE))

DEBUG = environment.flag("DEBUG", False)

# Required, never defaulted: a missing one stops start-up with
# "Set the <NAME> environment variable".
SECRET_KEY = environment.text("SECRET_KEY")
# Key ring for values at rest: "id:base64key[,id:base64key...]"; parsed by secrets_app.crypto.
SECRETS_ENCRYPTION_KEYS = environment.text("SECRETS_ENCRYPTION_KEYS")
SECRETS_ENCRYPTION_ACTIVE_KEY = environment.text("SECRETS_ENCRYPTION_ACTIVE_KEY", "")
# Key of the audit log's HMAC chain (at least 32 characters); see secrets_app.crypto.audit_mac.
AUDIT_HMAC_KEY = environment.text("AUDIT_HMAC_KEY")
if len(AUDIT_HMAC_KEY) < 32:
    raise ImproperlyConfigured("AUDIT_HMAC_KEY must be at least 32 characters long")
# Key of the values' fingerprints (at least 32 characters); see secrets_app.crypto.value_fingerprint.
SECRETS_FINGERPRINT_KEY = environment.text("SECRETS_FINGERPRINT_KEY")
if len(SECRETS_FINGERPRINT_KEY) < 32:
    raise ImproperlyConfigured("SECRETS_FINGERPRINT_KEY must be at least 32 characters long")

ALLOWED_HOSTS = environment.names("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("Set the ALLOWED_HOSTS environment variable (required when DEBUG is false)")
CSRF_TRUSTED_ORIGINS = environment.names("CSRF_TRUSTED_ORIGINS", [])
# How many reverse proxies in front of the app append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = environment.number("TRUSTED_PROXY_COUNT", 0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    # django-allauth's passkey list uses its filters.
    "django.contrib.humanize",
    "guardian",
    "axes",
    "csp",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "secrets_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Sends a sensitive action that needs re-authentication to "confirm it's you", then resumes it.
    "allauth.account.middleware.AccountMiddleware",
    "secrets_app.middleware.RunnerSessionScopeMiddleware",
    "secrets_app.middleware.SessionActivityMiddleware",
    "secrets_app.middleware.WorkspaceMfaPolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "secrets_app.middleware.NoStoreMiddleware",
    # Before anything reads a body (CSRF reads a form's, the view the rest), after those that add
    # headers to every answer: a body over the limit is refused by its declared size.
    "secrets_app.middleware.RequestSizeLimitMiddleware",
    "secrets_app.middleware.FormErrorStatusMiddleware",
    # Innermost, so that it sees a view's exception first: a domain refusal is its page, never a 500.
    "secrets_app.middleware.ConsoleErrorPagesMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lockout answer.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "secrets_app.context_processors.workspace_switcher",
                "secrets_app.context_processors.identity",
            ],
        },
    },
]

# In production (DEBUG off) both must be named explicitly: no app server may quietly fall back to a
# database file of its own, or to a cache no other process can see.
DATABASES = {"default": environment.database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}" if DEBUG else None)}
DATABASES["default"]["CONN_MAX_AGE"] = environment.number("CONN_MAX_AGE", 0)
# A persistent connection is checked before each request reuses it: one left dead by a database
# restart is replaced then, instead of failing that request.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable database host must be a quick 503, not a worker stuck in connect() until
    # gunicorn kills it. `?connect_timeout=N` in DATABASE_URL overrides this.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and environment.flag(
    "DATABASE_PREPARED_STATEMENTS", True
):
    # Server-side binding lets psycopg prepare the statements a connection runs often, so that
    # PostgreSQL plans the runner read once per connection instead of on every request: planning
    # it takes some 5 ms, running it 0.1 ms. Turn off behind a pooler in transaction mode that
    # cannot keep prepared statements.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"server_side_binding": True, "prepare_threshold": 5})
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN,
    # so two writers queue instead of failing with "database is locked" mid-transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )

CACHES = {"default": environment.cache("CACHE_URL", "locmemcache://" if DEBUG else None)}
if not DEBUG and CACHES["default"]["BACKEND"].endswith(("LocMemCache", "DummyCache")):
    # Sessions are cached: with a per-process cache, a session ended (a finished execution, a
    # sign-out) in one worker would live on in the cache of another.
    raise ImproperlyConfigured(
        "Set the CACHE_URL environment variable to a shared cache, e.g. redis://host:6379/1 (required when DEBUG "
        "is false: a per-process cache would keep ended sessions alive in other workers)"
    )

# Sessions live in the cache with the database behind them, so any app server can read
# them and a deleted session is gone for every server at once. The engine is Django's
# `cached_db`, keeping the registry of signed-in sessions (Account Settings → Sessions) in step.
SESSION_ENGINE = "secrets_app.session_store"
SESSION_COOKIE_AGE = environment.number("SESSION_COOKIE_AGE", 12 * 60 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = environment.flag("SESSION_COOKIE_SECURE", not DEBUG)
# Lifetime of a runner session (an execution's session), in seconds; a launch may ask for less.
RUNNER_SESSION_MAX_AGE = environment.number("RUNNER_SESSION_MAX_AGE", 12 * 60 * 60)
# Value lookups ("is this value stored here?") each user may make in a workspace: N/s, N/m, N/h or
# N/d (django-ratelimit), counted in the shared cache.
VALUE_LOOKUP_RATE = environment.rate("VALUE_LOOKUP_RATE", "10/h")
# Secrets expiring within this many days carry an "expires in N days" badge in the list.
SECRET_EXPIRY_WARNING_DAYS = environment.number("SECRET_EXPIRY_WARNING_DAYS", 7)
CSRF_COOKIE_SECURE = environment.flag("CSRF_COOKIE_SECURE", not DEBUG)
CSRF_FAILURE_VIEW = "secrets_app.views.errors.csrf_failure"

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = environment.flag("SECURE_SSL_REDIRECT", not DEBUG)
# Load balancers probe the app servers over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_HSTS_SECONDS = environment.number("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = environment.flag("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = environment.flag("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Scripts and styles only from our own static files: no inline script, no inline style, no
# eval, nothing from elsewhere; no framing, no plugins, forms post only to the console.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # First: refuses any sign-in (UI, API, admin) while its user or its address is locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # Sign-in by e-mail address as well as username (django-allauth's forms).
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Failed sign-ins are counted per username and per client address in the shared cache, so every
# app server sees the same counts; past the limit, sign-in is refused (429) until the lockout ends.
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = environment.number("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=environment.number("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success resets its own username's count only (secrets_app.signals), never its address's: an
# attacker signing in to an account of their own must not wipe the failures of their guesses.
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "secrets_app.http.client_ip"
AXES_LOCKOUT_CALLABLE = "secrets_app.views.errors.sign_in_locked_out"
AXES_SENSITIVE_PARAMETERS = ["password"]
if DEBUG:
    # axes.W001 warns that a per-process cache does not share counts between servers; the DEBUG
    # server is one process, and without DEBUG a per-process cache is refused above.
    SILENCED_SYSTEM_CHECKS = ["axes.W001"]
# A lockout counts per account whichever name it was asked for by (username or e-mail address).
AXES_USERNAME_CALLABLE = "secrets_app.identity.sign_in_name"
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"

# Sign-in, sign-up, password reset and two-factor: django-allauth (secrets_app/identity.py adapts it).
ACCOUNT_ADAPTER = "secrets_app.identity.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "secrets_app.identity.SocialAccountAdapter"
MFA_ADAPTER = "secrets_app.identity.MFAAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
# No username is chosen at sign-up (one is made from the address), so sign-up cannot tell whether a
# username exists; whether an address exists is answered by e-mail, to its owner only.
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_UNIQUE_EMAIL = True
# Sign-up always ends at "check your e-mail" (secrets_app.identity.SignupForm), so that it answers
# the same for an address that has an account; "mandatory" also refuses sign-in until confirmed.
ACCOUNT_EMAIL_VERIFICATION = environment.choice("ACCOUNT_EMAIL_VERIFICATION", "optional", ["mandatory", "optional"])
ACCOUNT_FORMS = {
    "login": "secrets_app.identity.LoginForm",
    "signup": "secrets_app.identity.SignupForm",
    "change_password": "secrets_app.identity.CountedChangePasswordForm",
}
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_LOGOUT_ON_GET = False
# Sessions last SESSION_COOKIE_AGE, browser closed or not (no "remember me" choice).
ACCOUNT_SESSION_REMEMBER = True
# A password change ends the user's other sessions (secrets_app.identity), this one stays signed in.
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
# allauth's own rate limits stay on (reset e-mails, confirmation mails). Its count of failures also
# limits two-factor codes: 10 wrong codes per user in 5 minutes (a TOTP code has a million values).
# Wrong passwords are django-axes' to lock (LOGIN_FAILURE_LIMIT, lower): it answers them first.
# The password form's own limit is above it too, so that a locked account sees the lockout there.
ACCOUNT_RATE_LIMITS = {"login_failed": "30/m/ip,10/5m/key", "change_password": "10/m/user"}
# Sensitive actions (launch, grants, members, lookup, policy, removing a factor) need a password,
# TOTP or passkey check within this many minutes ("sudo mode").
REAUTHENTICATION_MINUTES = environment.number("REAUTHENTICATION_MINUTES", 10)
ACCOUNT_REAUTHENTICATION_TIMEOUT = REAUTHENTICATION_MINUTES * 60
ACCOUNT_REAUTHENTICATION_REQUIRED = False
# "Confirm it's you" by password or a second factor; an e-mailed code does not prove the person.
ACCOUNT_REAUTHENTICATION_METHODS = ["password", "mfa"]
# Closed: users come from single sign-on, the admin or `createsuperuser`.
SIGNUP_OPEN = environment.flag("SIGNUP_OPEN", True)
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
# With optional verification, a member told to add a factor may do so before confirming the address.
MFA_ALLOW_UNVERIFIED_EMAIL = True
# A passkey signs in on its own, but not where only single sign-on may (SSO_ONLY, below).
MFA_PASSKEY_LOGIN_ENABLED = not environment.flag("SSO_ONLY", False)
MFA_TOTP_ISSUER = environment.text("MFA_TOTP_ISSUER", "Secrets Console")
# WebAuthn needs a secure origin; http://localhost and 127.0.0.1 are one in browsers, so `make run`
# may use passkeys too.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
# Single sign-on with an OpenID Connect provider, named by the environment (README: Single sign-on).
OIDC_ISSUER_URL = environment.text("OIDC_ISSUER_URL", "")
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "sso",
                "name": environment.text("OIDC_BUTTON_LABEL", "Single sign-on"),
                "client_id": environment.text("OIDC_CLIENT_ID", ""),
                "secret": environment.text("OIDC_CLIENT_SECRET", ""),
                "settings": {"server_url": OIDC_ISSUER_URL, "oauth_pkce_enabled": True},
            }
        ]
        if OIDC_ISSUER_URL
        else [],
    }
}
if OIDC_ISSUER_URL:
    # Single sign-on's "Continue" posts to the console, which redirects to the provider: browsers
    # hold that redirect to form-action too.
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"].append(web_origin(OIDC_ISSUER_URL))
# Password sign-in is for superusers only (break-glass); everyone else signs in with the provider.
SSO_ONLY = environment.flag("SSO_ONLY", False)
if SSO_ONLY and not OIDC_ISSUER_URL:
    raise ImproperlyConfigured("SSO_ONLY=true needs OIDC_ISSUER_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")

# Guardian's anonymous user would be an ordinary user row (and so get a personal
# workspace); nobody anonymous is ever granted anything here.
ANONYMOUS_USER_NAME = None

LANGUAGE_CODE = "en-us"
TIME_ZONE = environment.text("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(environment.text("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed names need `collectstatic`; a DEBUG checkout serves straight from
    # the source folders instead.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies above this are refused with 413 before they are read (RequestSizeLimitMiddleware,
# and console/asgi.py in front of it); no form or API body needs more.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
# A file uploaded to a form is kept in memory (it is at most 256 KiB, under the limit above).
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
# Under `make serve-prod` (console/worker.py and console/asgi.py): seconds a client has to send a
# request's headers (from connecting, or from the end of its previous answer), then its body, and
# to take each part of an answer; a client slower than that is disconnected.
REQUEST_HEADER_TIMEOUT_SECONDS = environment.number("REQUEST_HEADER_TIMEOUT_SECONDS", 10)
REQUEST_BODY_TIMEOUT_SECONDS = environment.number("REQUEST_BODY_TIMEOUT_SECONDS", 10)
RESPONSE_SEND_TIMEOUT_SECONDS = environment.number("RESPONSE_SEND_TIMEOUT_SECONDS", 30)

DEFAULT_EXCEPTION_REPORTER_FILTER = "secrets_app.reporting.AlwaysSafeExceptionReporterFilter"
# Error reports by e-mail: ADMINS is a comma-separated list of addresses.
ADMINS = [(address, address) for address in environment.names("ADMINS", [])]
SERVER_EMAIL = environment.text("SERVER_EMAIL", "secrets-console@localhost")
# The sender of address confirmations and password resets.
DEFAULT_FROM_EMAIL = environment.text("DEFAULT_FROM_EMAIL", "webmaster@localhost")
EMAIL_CONFIG = environment.email("EMAIL_URL", "consolemail://")
vars().update(EMAIL_CONFIG)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": environment.text("LOG_LEVEL", "INFO")},
    # Lockouts are logged as warnings; axes' INFO lines (one per start and per attempt) are noise.
    "loggers": {"axes": {"level": "WARNING"}},
}
