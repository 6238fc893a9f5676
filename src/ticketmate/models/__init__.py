"""Every table of the service; importing this module registers them all on Base.metadata."""

from ticketmate.models.api_token import ApiToken
from ticketmate.models.audit_entry import AuditEntry
from ticketmate.models.base import Base
from ticketmate.models.delivery import DeliveryAttempt, IntegrationDelivery
from ticketmate.models.issue_security import IssueSecurity
from ticketmate.models.jira_event import JiraEventRecord
from ticketmate.models.membership import Membership
from ticketmate.models.signin_throttle import SigninThrottle
from ticketmate.models.teams_subscription import TeamsSubscription
from ticketmate.models.teams_webhook import TeamsWebhook
from ticketmate.models.user import User
from ticketmate.models.web_session import WebSession
from ticketmate.models.workspace import Workspace

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "DeliveryAttempt",
    "IntegrationDelivery",
    "IssueSecurity",
    "JiraEventRecord",
    "Membership",
    "SigninThrottle",
    "TeamsSubscription",
    "TeamsWebhook",
    "User",
    "WebSession",
    "Workspace",
]
