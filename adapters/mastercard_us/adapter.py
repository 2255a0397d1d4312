"""The mastercard-us adapter: Mastercard Open Finance US on the shared Mastercard platform adapter."""
from __future__ import annotations

from typing import Any

from adapters.mastercard.adapter import MastercardPlatformAdapter, MastercardSettings
from adapters.mastercard.region import US


class MastercardUSAdapter(MastercardPlatformAdapter):
    provider_id = "mastercard-us"
    regions = frozenset({"US"})
    region = US
    capabilities = frozenset({
        "list_institutions", "create_customer", "create_consent", "complete_consent", "refresh_consent",
        "revoke_consent", "list_accounts", "get_balances", "get_live_balances", "list_transactions",
        "get_account_details", "get_account_owner",
    })

    @classmethod
    def create_sandbox(cls, config: Any) -> Any:
        from adapters.mastercard_us.sandbox import MastercardUSSandbox

        settings: MastercardSettings = config.settings
        return MastercardUSSandbox(partner_id=settings.partner_id, partner_secret=settings.partner_secret.reveal(),
                                   app_key=settings.app_key.reveal(), token_ttl=settings.sandbox_token_ttl)
