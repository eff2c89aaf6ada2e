"""LTI 1.3 log-in from the learning platform (Moodle, Canvas, Blackboard...).

``hub/jupyterhub_config.py`` calls :func:`configure` when ``MLM_HUB_AUTH=lti13``
(off by default).  The hub is then an LTI 1.3 tool: a student follows the
course's link in the learning platform, the platform starts an OpenID Connect
log-in (``/hub/lti13/oauth_login``), JupyterHub sends the browser back to the
platform's authorisation endpoint, and the platform posts a signed
``id_token`` to ``/hub/lti13/oauth_callback``.  The authenticator
(jupyterhub-ltiauthenticator's ``LTI13Authenticator``) checks the signature
against the platform's published keys (JWKS), the issuer, the audience (the
tool's client id), the expiry, the nonce and the state; this module adds:

* groups from the platform's roles: a person whose roles in the *course*
  (the LTI context) include Instructor, or one of its sub-roles such as
  Teaching Assistant, is in ``instructors``; everybody else in
  ``students``.  An institution-wide role (a lecturer of another course who
  takes this one) does not count.  The groups follow the platform at every
  log-in (``Authenticator.manage_groups``), so a role changed in the
  platform changes the group at the next launch.
* the launch's state and nonce cookies marked ``SameSite=None; Secure``
  over HTTPS: the platform sends the browser back to the hub with a
  cross-site form post, on which browsers hold back cookies without that
  mark (:class:`CourseLTI13Authenticator`);
* optionally, only launches from one course of the platform
  (``MLM_HUB_LTI_CONTEXT_ID``: the platform's course id, the ``id`` of the
  LTI context claim); a launch from another course is refused.

Environment variables (the values come from the tool's registration in the
platform; Moodle, for example, shows them under *Tool configuration details*):

``MLM_HUB_LTI_ISSUER``          the platform's issuer, e.g. ``https://moodle.uni.ac.uk``
``MLM_HUB_LTI_CLIENT_ID``       the client id(s) the platform gave the tool (comma-separated)
``MLM_HUB_LTI_AUTHORIZE_URL``   the platform's authentication request URL
``MLM_HUB_LTI_JWKS_URL``        the platform's public keyset URL
``MLM_HUB_LTI_USERNAME_KEY``    [custom_username] the id_token claim that gives the hub
                                user name; ``custom_NAME`` reads the tool's custom
                                parameter NAME (set it in the platform to the login
                                name: Moodle ``username=$User.username``, Canvas
                                ``username=$Canvas.user.loginId``).  On this one-machine
                                hub the name must be a roster login (a system account).
``MLM_HUB_LTI_CONTEXT_ID``      [any course] accept launches from this course only

Only the standard library at import: ``jupyterhub_config.py`` imports this
file, the Zero to JupyterHub values mount it in the hub (``--set-file``), and
the tests import :func:`groups_for_roles`.  The authenticator class is made
on first use (``lti_login.CourseLTI13Authenticator``), where
jupyterhub-ltiauthenticator is installed.
"""

from __future__ import annotations

import os

AUTHENTICATOR = "lti_login.CourseLTI13Authenticator"
ROLES_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/roles"
CONTEXT_CLAIM = "https://purl.imsglobal.org/spec/lti/claim/context"
# LIS v2 context (membership) roles.  Sub-roles are written
# ".../membership/Instructor#TeachingAssistant".
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
INSTRUCTOR_ROLES = (f"{MEMBERSHIP}#Instructor", f"{MEMBERSHIP}/Instructor#")
# LTI 1.3 still accepts the short names of LTI 1.1 for context roles.
SHORT_INSTRUCTOR = "Instructor"
INSTRUCTORS, STUDENTS = "instructors", "students"


def is_instructor(roles) -> bool:
    """True when the LTI roles include Instructor (or a sub-role of it) in the course."""
    for role in roles or ():
        if not isinstance(role, str):
            continue
        if role == SHORT_INSTRUCTOR or role == INSTRUCTOR_ROLES[0] or role.startswith(INSTRUCTOR_ROLES[1]):
            return True
    return False


def groups_for_roles(roles) -> list[str]:
    """The hub groups of a person with these LTI roles: ``instructors`` or ``students``."""
    return [INSTRUCTORS] if is_instructor(roles) else [STUDENTS]


def _make_authenticator_class():
    from ltiauthenticator.lti13.auth import LTI13Authenticator
    from ltiauthenticator.lti13.handlers import LTI13LoginInitHandler

    class CrossSiteLoginInitHandler(LTI13LoginInitHandler):
        """The login initiation, with state and nonce cookies that survive the platform's form post.

        The platform returns the browser to ``/hub/lti13/oauth_callback`` with
        a form post from its own site; browsers send a cookie on such a
        cross-site post only when it says ``SameSite=None`` (which needs
        ``Secure``, so HTTPS).  Only these two short-lived cookies are
        marked so; the hub's log-in cookie keeps the browser's default.
        """

        def _set_oauth_cookie(self, key, value):
            cross_site = {"samesite": "None", "secure": True} if self.request.protocol == "https" else {}
            self._set_cookie(key, value, expires_days=1, httponly=True, encrypted=True, **cross_site)

    class CourseLTI13Authenticator(LTI13Authenticator):
        """jupyterhub-ltiauthenticator's LTI13Authenticator (configured as ``c.LTI13Authenticator``),
        with the cross-site cookies of :class:`CrossSiteLoginInitHandler`."""

        login_handler = CrossSiteLoginInitHandler

    return CourseLTI13Authenticator


def __getattr__(name):
    # ``lti_login.CourseLTI13Authenticator`` (JupyterHub's authenticator_class):
    # made when first asked for, so that importing this module needs nothing
    # but the standard library.
    if name == "CourseLTI13Authenticator":
        cls = _make_authenticator_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_post_auth_hook(context_id: str | None = None):
    """A post-auth hook: groups from the id_token's roles; launches from one course only if given."""

    def post_auth_hook(authenticator, handler, auth_model):
        claims = auth_model.get("auth_state") or {}
        if context_id:
            context = (claims.get(CONTEXT_CLAIM) or {}).get("id")
            if context != context_id:
                authenticator.log.warning("LTI launch for %s from course %r refused: this hub takes %r only",
                                          auth_model.get("name"), context, context_id)
                return None
        auth_model["groups"] = groups_for_roles(claims.get(ROLES_CLAIM))
        return auth_model

    return post_auth_hook


def configure(c, env=os.environ, allowed_users=None) -> None:
    """Set up ``c`` (JupyterHub's config) for LTI 1.3 log-in from the environment variables above.

    ``allowed_users``: the only user names that may log in (the roster's, on
    the one-machine hub, where each needs a system account); ``None`` lets in
    everybody the platform launches.
    """
    missing = [name for name in ("MLM_HUB_LTI_ISSUER", "MLM_HUB_LTI_CLIENT_ID",
                                 "MLM_HUB_LTI_AUTHORIZE_URL", "MLM_HUB_LTI_JWKS_URL") if not env.get(name)]
    if missing:
        raise ValueError(f"MLM_HUB_AUTH=lti13 needs {', '.join(missing)} (from the tool's registration "
                         "in the learning platform; see hub/lti.py)")
    c.JupyterHub.authenticator_class = AUTHENTICATOR
    # Configured under the name of the class it extends (its traits are LTI13Authenticator's).
    c.LTI13Authenticator.issuer = env["MLM_HUB_LTI_ISSUER"]
    c.LTI13Authenticator.client_id = {i.strip() for i in env["MLM_HUB_LTI_CLIENT_ID"].split(",") if i.strip()}
    c.LTI13Authenticator.authorize_url = env["MLM_HUB_LTI_AUTHORIZE_URL"]
    c.LTI13Authenticator.jwks_endpoint = env["MLM_HUB_LTI_JWKS_URL"]
    c.LTI13Authenticator.username_key = env.get("MLM_HUB_LTI_USERNAME_KEY") or "custom_username"
    # The id_token's claims (roles, context, names) reach the post-auth hook as
    # auth_state; they are not stored (no enable_auth_state, no crypt key needed).
    c.Authenticator.post_auth_hook = make_post_auth_hook(env.get("MLM_HUB_LTI_CONTEXT_ID") or None)
    c.Authenticator.manage_groups = True
    if allowed_users is None:
        c.Authenticator.allow_all = True
    else:
        c.Authenticator.allowed_users = set(allowed_users)
