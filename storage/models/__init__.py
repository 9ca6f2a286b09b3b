"""All models, in an order that creates referenced tables first."""

from storage.models.accounts import Account, User
from storage.models.api_tokens import ApiToken
from storage.models.base import BaseModel, UTCDateTimeField
from storage.models.campaigns import (
    Campaign,
    CampaignBatch,
    CampaignRecipient,
    Contact,
    ContactList,
    MediaItem,
    MessageTemplate,
)
from storage.models.consent import InboundEvent, Suppression
from storage.models.engagement import (
    EngagementOutcome,
    EngagementRun,
    EngagementState,
    EngagementTransition,
    UserProfile,
)
from storage.models.hunts import (
    Ad,
    ContactedAd,
    Hunt,
    HuntChannelCredit,
    HuntPacing,
    HuntRun,
    Lead,
    LeadEvent,
)
from storage.models.outbox import OutboxMessage
from storage.models.scheduler import ScheduleLastFire
from storage.models.senders import Sender

ALL_MODELS: list[type[BaseModel]] = [
    OutboxMessage,
    Account,
    User,
    ContactList,
    Contact,
    MessageTemplate,
    MediaItem,
    Campaign,
    CampaignRecipient,
    CampaignBatch,
    UserProfile,
    EngagementState,
    EngagementRun,
    EngagementTransition,
    EngagementOutcome,
    Ad,
    Hunt,
    HuntChannelCredit,
    HuntPacing,
    HuntRun,
    Lead,
    ContactedAd,
    LeadEvent,
    ScheduleLastFire,
    Suppression,
    InboundEvent,
    ApiToken,
    Sender,
]

__all__ = [
    "ALL_MODELS",
    "Account",
    "Ad",
    "ApiToken",
    "BaseModel",
    "Campaign",
    "CampaignBatch",
    "CampaignRecipient",
    "Contact",
    "ContactList",
    "ContactedAd",
    "EngagementOutcome",
    "EngagementRun",
    "EngagementState",
    "EngagementTransition",
    "Hunt",
    "HuntChannelCredit",
    "HuntPacing",
    "HuntRun",
    "InboundEvent",
    "Lead",
    "LeadEvent",
    "MediaItem",
    "MessageTemplate",
    "OutboxMessage",
    "ScheduleLastFire",
    "Sender",
    "Suppression",
    "UTCDateTimeField",
    "User",
    "UserProfile",
]
