"""Every table of the service; importing this module registers them all on Base.metadata."""

from ticketmate.models.api_token import ApiToken
from ticketmate.models.base import Base
from ticketmate.models.membership import Membership
from ticketmate.models.signin_throttle import SigninThrottle
from ticketmate.models.user import User
from ticketmate.models.web_session import WebSession
from ticketmate.models.workspace import Workspace

__all__ = ["ApiToken", "Base", "Membership", "SigninThrottle", "User", "WebSession", "Workspace"]
