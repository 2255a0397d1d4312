"""What differs between the US and AU deployments of the platform, as data rather than branches in code."""
from __future__ import annotations

from urllib.parse import quote

import attrs


@attrs.frozen(slots=True)
class MastercardRegion:
    provider_id: str
    country: str  # ISO 3166-1 alpha-2
    currency: str  # the default when a payload names none
    app_key_header: str
    app_token_header: str
    # Path templates with {customer} and {account} placeholders.
    transactions_path: str
    details_path: str
    details_scheme: str  # "us_ach" | "au_bsb": which payment coordinates the details call returns
    # Connect page languages besides English (the default, never sent).
    connect_languages: frozenset[str] = frozenset()

    def path(self, template: str, *, customer: str, account: str) -> str:
        """Fill a path template, percent-encoding the ids so none can change the path's shape."""
        return template.format(customer=quote(str(customer), safe=""), account=quote(str(account), safe=""))


US = MastercardRegion(
    provider_id="mastercard-us",
    country="US",
    currency="USD",
    app_key_header="Finicity-App-Key",
    app_token_header="Finicity-App-Token",
    transactions_path="/aggregation/v4/customers/{customer}/accounts/{account}/transactions",
    details_path="/aggregation/v1/customers/{customer}/accounts/{account}/details",
    details_scheme="us_ach",
    connect_languages=frozenset({"es", "fr"}),
)

AU = MastercardRegion(
    provider_id="mastercard-au",
    country="AU",
    currency="AUD",
    app_key_header="App-Key",
    app_token_header="App-Token",
    transactions_path="/aggregation/v3/customers/{customer}/accounts/{account}/transactions",
    details_path="/aggregation/v3/customers/{customer}/accounts/{account}/details",
    details_scheme="au_bsb",
)

REGIONS: dict[str, MastercardRegion] = {r.provider_id: r for r in (US, AU)}


def region_for(provider_id: str) -> MastercardRegion:
    try:
        return REGIONS[provider_id]
    except KeyError:
        raise LookupError(f"{provider_id!r} is not a Mastercard platform provider") from None
