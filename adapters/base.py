"""The adapter contract and the provider registry.

An adapter translates canonical operations into one provider's API. It declares, as class metadata, its
`provider_id`, the `regions` it serves and its `capabilities`: the names of the operations below that it implements.
The capability matrix (`GET /v1/providers`, the validation layer, `gateway providers`) is read from that declaration,
and a test proves the declaration equals the set of methods the class really overrides.

The records the operations take and answer (`CallContext`, `PaymentInput`, `ConsentUpdate`, …) are defined in
`adapters.operations` and importable from here. Adapters get their config section, a connectivity client factory and
the store by injection; they hold no globals.
Adding a provider means: a package under adapters/, one line in PROVIDERS below, one section in the environment file.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, ClassVar

from adapters.operations import (
    CallContext, CreateCustomerInput, CreatedCustomer, CreateConsentInput, ConsentUpdate, ConnectionProblem,
    InboundEvent, CreateConsumerInput, CreateReportInput, ReportUpdate, ReportContent, RegisterApplicationInput,
    PaymentInput, PaymentLink, PaymentUpdate, TransactionQuery, InstitutionQuery,
)
from gateway.errors import UnsupportedOperation, ValidationFailed
from gateway.models import (
    Account,
    AccountDetails,
    Balance,
    ConnectLink,
    Institution,
    Owner,
    Page,
    Transaction,
)
from gateway.store.records import (
    AccountRecord, ApplicationRecord, ConsentRecord, CustomerRecord, PaymentRecord, ReportRecord,
)

if TYPE_CHECKING:
    from gateway.config import AdapterConfig
    from gateway.connectivity.client import UpstreamFactory
    from gateway.vault import Vault

__all__ = [  # the contract, with its records (defined in adapters.operations)
    "Adapter", "OPERATIONS", "PROVIDERS", "implemented_operations", "load_adapter_class", "CallContext",
    "CreateCustomerInput", "CreatedCustomer", "CreateConsentInput", "ConsentUpdate", "ConnectionProblem",
    "InboundEvent", "CreateConsumerInput", "CreateReportInput", "ReportUpdate", "ReportContent",
    "RegisterApplicationInput", "PaymentInput", "PaymentLink", "PaymentUpdate", "TransactionQuery",
    "InstitutionQuery",
]

# provider id -> "module:Class", imported lazily so a disabled provider costs nothing.
PROVIDERS: dict[str, str] = {
    "mastercard-us": "adapters.mastercard_us.adapter:MastercardUSAdapter",
    "mastercard-au": "adapters.mastercard_au.adapter:MastercardAUAdapter",
    "stripe-uk": "adapters.stripe_uk.adapter:StripeUKAdapter",
    "thredd": "adapters.thredd.adapter:ThreddAdapter",
    "ob-connect": "adapters.ob_connect.adapter:ObConnectAdapter",
}

# Every operation an adapter may implement, in the order the capability matrix shows them.
OPERATIONS: tuple[str, ...] = (
    "list_institutions",
    "create_customer",
    "create_consent",
    "complete_consent",
    "refresh_consent",
    "revoke_consent",
    "list_accounts",
    "get_balances",
    "get_live_balances",
    "list_transactions",
    "get_account_details",
    "get_account_owner",
    "revoke_institution_login",
    "consent_dashboard",
    "create_consumer",
    "create_report",
    "get_report",
    "get_report_content",
    "register_application",
    "get_application",
    "list_application_institutions",
    "register_client",
    "create_payment",
    "authorise_payment",
    "submit_payment",
    "get_payment",
    "confirm_funds",
    "list_standing_orders",
    "get_raw_consent",
)


class Adapter:
    provider_id: ClassVar[str]
    regions: ClassVar[frozenset[str]]
    capabilities: ClassVar[frozenset[str]]

    # The attrs class the adapter's provider-specific config keys are structured into.
    settings_type: ClassVar[type]
    def __init__(self, config: "AdapterConfig", upstreams: "UpstreamFactory", store: Any, *, base_url: str,
                 vault: "Vault | None" = None, public_url: str | None = None) -> None:
        self.config = config
        self.settings = config.settings
        self.upstreams = upstreams
        self.store = store
        self.base_url = base_url
        self.vault = vault  # encrypted storage for secrets the provider issues at run time
        self.public_url = public_url  # where this gateway is reachable, for the URLs providers call back

    @classmethod
    def create_sandbox(cls, config: "AdapterConfig") -> Any:
        """The simulated upstream for the embedded environment, built to accept this config's credentials."""
        raise LookupError(f"{cls.provider_id} has no simulator")

    async def start(self) -> None:
        """Open upstream sessions; called once when the app starts."""

    async def close(self) -> None:
        """Release upstream sessions; called once when the app stops."""

    def health(self) -> dict[str, Any]:
        """Upstream health for GET /v1/providers: circuit state per upstream."""
        return {}

    # --- inbound webhooks (POST /webhooks/<provider>[/<channel>]) ------------------------------------------------
    # The channels the provider calls: "" is POST /webhooks/<provider>, "x" is POST /webhooks/<provider>/x.
    webhook_channels: ClassVar[frozenset[str]] = frozenset()
    # The status the gateway acknowledges a verified webhook with (OB event notifications expect 202).
    webhook_ack_status: ClassVar[int] = 200

    def verify_webhook(self, headers: Any, body: bytes) -> None:
        """Raise Unauthenticated unless the request really comes from the provider (checked on the raw bytes)."""
        raise self._unsupported("webhooks")

    def parse_webhook(self, headers: Any, body: bytes) -> InboundEvent:
        """Read a verified webhook; raise MalformedRequest when it cannot be read."""
        raise self._unsupported("webhooks")

    async def receive_webhook(self, channel: str, headers: Any, body: bytes) -> InboundEvent:
        """Verify and read one webhook of `channel`; adapters with several channels override this."""
        self.verify_webhook(headers, body)
        return self.parse_webhook(headers, body)

    def webhook_url(self, channel: str = "") -> str | None:
        if self.public_url is None:
            return None
        return f"{self.public_url.rstrip('/')}/webhooks/{self.provider_id}" + (f"/{channel}" if channel else "")

    # --- provider rules the validation layer applies before any upstream call (raise ValidationFailed) ---------
    def validate_customer(self, data: CreateCustomerInput) -> None:
        """Provider-specific rules for a new customer; the default accepts what the canonical checks accepted,
        for individual customers."""
        self.validate_customer_category(data)

    def validate_consent(self, data: CreateConsentInput, customer: CustomerRecord | None) -> None:
        """Provider-specific rules for a new consent."""

    # Whether the provider records a consent's own expiry and transaction window (CreateConsentInput.expires_at,
    # transactions_from, transactions_to); where it does not, the validation layer refuses them.
    consent_limits: ClassVar[bool] = False

    def signing_keys(self) -> list[Any]:
        """The keys this adapter signs with (gateway.certificates.keys.SigningKey), published in the JWKS."""
        return []

    # The interval types a report of income is broken into when the caller names none.
    default_interval_types: ClassVar[tuple[str, ...]] = ()

    def validate_report(self, customer: CustomerRecord, data: CreateReportInput) -> None:
        """Provider-specific rules for a new report."""

    def validate_customer_category(self, data: CreateCustomerInput) -> None:
        """Refuse business customers and ABNs where the provider has no such notion (the default)."""
        if data.category != "individual" or data.abn is not None:
            raise ValidationFailed("category: this provider has individual customers only", errors=[
                {"location": "body", "field": "category" if data.abn is None else "abn",
                 "message": f"{self.provider_id} has no business customers"}])

    # --- operations: the base versions refuse, adapters override what they support -------------------------------
    def _unsupported(self, name: str) -> UnsupportedOperation:
        return UnsupportedOperation(f"{self.provider_id} does not support {name}")

    async def list_institutions(self, ctx: CallContext, query: InstitutionQuery) -> Page[Institution]:
        raise self._unsupported("list_institutions")

    async def create_customer(self, ctx: CallContext, data: CreateCustomerInput) -> CreatedCustomer:
        raise self._unsupported("create_customer")

    async def create_consent(
        self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None, data: CreateConsentInput
    ) -> ConnectLink:
        raise self._unsupported("create_consent")

    async def complete_consent(
        self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None, result: dict[str, str]
    ) -> ConsentUpdate:
        raise self._unsupported("complete_consent")

    async def refresh_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> ConsentUpdate:
        raise self._unsupported("refresh_consent")

    async def revoke_consent(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> None:
        raise self._unsupported("revoke_consent")

    async def list_accounts(self, ctx: CallContext, consent: ConsentRecord, customer: CustomerRecord | None) -> list[Account]:
        raise self._unsupported("list_accounts")

    async def get_balances(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> list[Balance]:
        raise self._unsupported("get_balances")

    async def get_live_balances(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> list[Balance]:
        raise self._unsupported("get_live_balances")

    async def list_transactions(
        self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord, query: TransactionQuery
    ) -> Page[Transaction]:
        raise self._unsupported("list_transactions")

    async def get_account_details(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> AccountDetails:
        raise self._unsupported("get_account_details")

    async def get_account_owner(self, ctx: CallContext, consent: ConsentRecord, account: AccountRecord) -> Owner:
        raise self._unsupported("get_account_owner")

    async def revoke_institution_login(self, ctx: CallContext, consent: ConsentRecord, login_ref: str) -> ConsentUpdate:
        """End one institution's arrangement under a consent; the update names the accounts it took away."""
        raise self._unsupported("revoke_institution_login")

    async def consent_dashboard(self, ctx: CallContext, customer: CustomerRecord, redirect_uri: str | None) -> ConnectLink:
        """A page where the end user reviews and revokes their consents."""
        raise self._unsupported("consent_dashboard")

    async def create_consumer(self, ctx: CallContext, customer: CustomerRecord, data: CreateConsumerInput) -> str:
        """Create the person reports are about; returns its upstream id."""
        raise self._unsupported("create_consumer")

    async def create_report(self, ctx: CallContext, customer: CustomerRecord, consent: ConsentRecord,
                            data: CreateReportInput) -> str:
        """Ask for a report; returns its upstream id (the report is generated asynchronously)."""
        raise self._unsupported("create_report")

    async def get_report(self, ctx: CallContext, customer: CustomerRecord, report: ReportRecord) -> ReportUpdate:
        raise self._unsupported("get_report")

    async def get_report_content(self, ctx: CallContext, customer: CustomerRecord, report: ReportRecord,
                                 media_type: str) -> ReportContent:
        raise self._unsupported("get_report_content")

    async def register_application(self, ctx: CallContext, data: RegisterApplicationInput) -> ApplicationRecord:
        raise self._unsupported("register_application")

    async def get_application(self, ctx: CallContext, application: ApplicationRecord) -> str:
        """The application's current registration status upstream."""
        raise self._unsupported("get_application")

    async def list_application_institutions(self, ctx: CallContext,
                                            application: ApplicationRecord) -> list[dict[str, Any]]:
        raise self._unsupported("list_application_institutions")

    async def register_client(self, ctx: CallContext | None) -> tuple[str, dict[str, Any]]:
        """Register the gateway as the provider's OAuth client, idempotently: ("kept" | "updated" | "created",
        the registration). The same capability covers reading and deleting it (get_registration,
        delete_registration)."""
        raise self._unsupported("register_client")

    async def list_standing_orders(self, ctx: CallContext, consent: ConsentRecord,
                                   account: AccountRecord) -> list[Any]:
        """The account's standing orders (gateway.models.StandingOrder), read-only."""
        raise self._unsupported("list_standing_orders")

    async def get_raw_consent(self, ctx: CallContext, consent: ConsentRecord) -> dict[str, Any]:
        """The consent exactly as the provider holds it, for audit."""
        raise self._unsupported("get_raw_consent")

    async def institution_country(self, institution_id: str, ctx: CallContext | None = None) -> str | None:
        """The country of one of the provider's institutions, for the licence check (None: the provider's regions
        are what counts). Raise ValidationFailed for an institution the provider does not know."""
        return None

    # --- payments -------------------------------------------------------------------------------------------------
    # What the provider accepts, checked by the validation layer before any upstream call.
    payment_types: ClassVar[frozenset[str]] = frozenset()
    payment_currencies: ClassVar[frozenset[str]] = frozenset()
    payment_schemes: ClassVar[frozenset[str]] = frozenset()  # creditor account schemes (uk_sort_code, iban, wallet)
    end_to_end_id_max: ClassVar[int] = 35  # what the provider's payment schemes carry of the end-to-end id

    def validate_payment(self, data: PaymentInput) -> None:
        """Provider-specific rules for a new payment (reference rules, identification formats, …)."""

    async def create_payment(self, ctx: CallContext, payment: PaymentRecord, data: PaymentInput) -> PaymentLink:
        """Create the payment consent upstream; the payer authorises it at the returned URL."""
        raise self._unsupported("create_payment")

    async def authorise_payment(self, ctx: CallContext, payment: PaymentRecord, result: dict[str, str]) -> PaymentUpdate:
        """Read the redirect result: authorised (with what submitting needs, e.g. sealed tokens) or rejected."""
        raise self._unsupported("authorise_payment")

    async def submit_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        """Submit an authorised payment. Must be safe to repeat: the provider sees a repeat as the same request."""
        raise self._unsupported("submit_payment")

    async def get_payment(self, ctx: CallContext, payment: PaymentRecord) -> PaymentUpdate:
        """Where the payment stands upstream. For an `unknown` payment, find out what the lost submission did by
        asking the provider; never by creating another payment."""
        raise self._unsupported("get_payment")

    async def confirm_funds(self, ctx: CallContext, payment: PaymentRecord) -> bool:
        """Whether the payer's account holds the amount (between authorisation and submission)."""
        raise self._unsupported("confirm_funds")

    async def get_registration(self, ctx: CallContext | None) -> dict[str, Any]:
        raise self._unsupported("register_client")

    async def delete_registration(self, ctx: CallContext | None) -> None:
        raise self._unsupported("register_client")


def implemented_operations(cls: type[Adapter]) -> frozenset[str]:
    """The operations a class really overrides (what its `capabilities` must equal)."""
    return frozenset(name for name in OPERATIONS if getattr(cls, name) is not getattr(Adapter, name))


def load_adapter_class(provider_id: str) -> type[Adapter]:
    try:
        target = PROVIDERS[provider_id]
    except KeyError:
        raise LookupError(f"unknown provider {provider_id!r}; known: {', '.join(sorted(PROVIDERS))}") from None
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if not issubclass(cls, Adapter) or cls.provider_id != provider_id:
        raise TypeError(f"{target} is not the adapter for {provider_id}")
    return cls
