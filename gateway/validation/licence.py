"""The licence check, as the Connect hub does it: the operator must hold the role (AISP for account information,
PISP for payments) and be authorised or passported in the country of the bank the request reaches. It runs before
any call for the operation itself; only the provider's cached list of banks may be read to learn a bank's country.
"""
from __future__ import annotations

from adapters.base import Adapter, CallContext
from gateway.config import LicenceConfig
from gateway.errors import LicenceNotPermitted

WHAT = {"AISP": "account information", "PISP": "payment initiation"}


async def require_licence(licence: LicenceConfig, adapter: Adapter, role: str,
                          institution_id: str | None = None, ctx: CallContext | None = None) -> None:
    if role not in licence.roles:
        raise LicenceNotPermitted(
            f"the gateway's licence has no {role} role, needed for {WHAT[role]} (it has: "
            f"{', '.join(licence.roles) or 'none'})", errors=[{"location": "licence", "field": "roles",
                                                               "message": f"{role} missing"}])
    if not licence.countries:
        return
    country = await adapter.institution_country(institution_id, ctx) if institution_id else None
    countries = {country} if country else set(adapter.regions)
    if not countries & set(licence.countries):
        where = f"the bank {institution_id} is in {country}" if country else \
            f"{adapter.provider_id} serves {', '.join(sorted(countries))}"
        raise LicenceNotPermitted(
            f"the gateway's licence does not cover this country: {where}; licensed countries: "
            f"{', '.join(licence.countries)}", errors=[{"location": "licence", "field": "countries",
                                                        "message": f"{country or ', '.join(sorted(countries))} "
                                                                   "missing"}])
