"""The spec's ``preflight_campaign_billing``: may this campaign's org be billed?

Called before a stage spends money: the proofing stage before any render or
discount code, the mailing stage again inside its claim.  It never raises.
Anything but a clear "ready" is an answer of not ready, including a billing
service that could not be asked (reliability.md §2: an org whose billing
lookup raises claims nothing).  The caller turns not ready into
``BILLING_NOT_READY`` on the recipients; ``problem`` says why, in plain words.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from campaigns.billing.base import BillingCheck, BillingClient, BillingError, get_billing_client

if TYPE_CHECKING:
    from campaigns.models import Campaign, Organization

log = logging.getLogger(__name__)

COULD_NOT_CHECK = "billing could not be checked"
NO_ORGANIZATION = "the organization no longer exists"


def preflight_campaign_billing(campaign: Campaign, *, client: BillingClient | None = None) -> BillingCheck:
    """Ready, or not ready with the reason; ``client`` defaults to the configured backend."""
    resolved = _resolve(client)
    if isinstance(resolved, BillingError):
        return _unchecked(campaign.organization_id, resolved)
    return _check(campaign.organization, resolved)


def organizations_billing_check(org_ids: Iterable[int], client: BillingClient | None = None) -> dict[int, BillingCheck]:
    """One check per distinct org, for a runner holding many campaigns of few orgs.

    Every id asked for has an answer: an org deleted meanwhile is not ready."""
    from campaigns.models import Organization

    wanted = sorted(set(org_ids))
    if not wanted:
        return {}
    resolved = _resolve(client)
    if isinstance(resolved, BillingError):
        return {org_id: _unchecked(org_id, resolved) for org_id in wanted}
    orgs = Organization.objects.in_bulk(wanted)
    return {
        org_id: _check(orgs[org_id], resolved) if org_id in orgs else BillingCheck(ready=False, problem=NO_ORGANIZATION)
        for org_id in wanted
    }


def _resolve(client: BillingClient | None) -> BillingClient | BillingError:
    """``client``, or the configured one; a settings mistake comes back as the error."""
    if client is not None:
        return client
    try:
        return get_billing_client()
    except BillingError as exc:
        return exc
    except Exception as exc:
        log.exception("billing: the billing settings could not be read")
        return BillingError(f"the billing settings could not be read ({type(exc).__name__})", permanent=True)


def _check(organization: Organization, client: BillingClient) -> BillingCheck:
    try:
        result = client.check(organization)
    except BillingError as exc:
        return _unchecked(organization.pk, exc)
    except Exception:
        # A bug or an answer we did not expect: fail closed, loudly in the log.
        log.exception("billing: the %s check of org %s failed unexpectedly", client.name, organization.pk)
        return BillingCheck(ready=False, problem=f"{COULD_NOT_CHECK}: an unexpected error (see the logs)")
    if result.ready:
        log.debug("billing: org %s is ready (%s)", organization.pk, client.name)
    else:
        log.warning("billing: org %s is not ready (%s): %s", organization.pk, client.name, result.problem)
    return result


def _unchecked(org_id: int | None, exc: BillingError) -> BillingCheck:
    kind = "permanent" if exc.permanent else "transient"
    log.warning("billing: org %s could not be checked (%s): %s", org_id, kind, exc.message)
    return BillingCheck(ready=False, problem=f"{COULD_NOT_CHECK}: {exc.message}")
