"""US ZIPs that a spreadsheet stripped of their leading zeros (02134 saved as
2134, the way Excel reads a ZIP column as numbers) are repaired on import,
and the blocklist keys them as the same ZIP: every ZIP in New England, New
Jersey and Puerto Rico starts with 0."""

from __future__ import annotations

import importlib
import io

import pytest
from django.apps import apps

from campaigns.audience import campaign_import_file
from campaigns.keys import blocklist_address_key
from campaigns.models import BlocklistEntry, CampaignRecipient
from campaigns.tests.factories import BlocklistEntryFactory, CampaignFactory
from campaigns.validation import recipient_validate
from common.fsm import Actor
from common.geo import us_zip_normalize

S = CampaignRecipient.Status


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2134", "02134"),  # Boston
        ("601", "00601"),  # Adjuntas, Puerto Rico
        ("2134-1234", "02134-1234"),
        ("21341234", "02134-1234"),  # ZIP+4 saved as a number: no hyphen, no zero
        ("021341234", "02134-1234"),
        ("62701", "62701"),  # whole ZIPs stay as they are
        ("62701-1234", "62701-1234"),
        ("12", "12"),  # too short to be a ZIP that lost zeros: the printer's rule says so
        ("123456", "123456"),
        ("SW1A 1AA", "SW1A 1AA"),
    ],
)
def test_a_us_zip_gets_back_the_zeros_a_spreadsheet_dropped(given: str, stored: str) -> None:
    assert us_zip_normalize(given) == stored


def row(**changes: str) -> dict[str, str]:
    return {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "address1": "1 Beacon St",
        "city": "Boston",
        "state": "MA",
        "zip": "2134",
        "country": "US",
        **changes,
    }


def test_the_import_validator_repairs_only_us_zips() -> None:
    assert recipient_validate(row()).data["zip"] == "02134"
    assert recipient_validate(row(country="United States", zip="601")).data["zip"] == "00601"
    # Four-digit postcodes are whole elsewhere (Australia, Austria, Denmark...).
    assert recipient_validate(row(country="AU", state="NSW", zip="2000")).data["zip"] == "2000"


@pytest.mark.django_db
def test_an_excel_saved_shopify_export_qualifies_instead_of_failing_the_printers_zip_rule() -> None:
    campaign = CampaignFactory(printer="lob")
    data = (
        b"First Name,Last Name,Default Address Address1,Default Address City,Default Address Province Code,"
        b"Default Address Country Code,Default Address Zip\n"
        b"Ada,Lovelace,1 Beacon St,Boston,MA,US,2134\n"
        b"Luis,Rivera,Calle 1,Adjuntas,PR,US,601\n"
        b"Grace,Hopper,2 Main St,Springfield,IL,US,62701\n"
    )
    campaign_import_file(campaign=campaign, file=io.BytesIO(data), actor=Actor("test"), source="export.csv")
    rows = dict(campaign.recipients.values_list("last_name", "zip"))
    assert rows == {"Lovelace": "02134", "Rivera": "00601", "Hopper": "62701"}
    assert not campaign.recipients.filter(status=S.SKIPPED).exists()


@pytest.mark.django_db
def test_the_blocklist_knows_a_zip_with_or_without_its_zeros() -> None:
    typed_short = blocklist_address_key(address1="1 Beacon St", zip="2134", country="US")
    assert typed_short == blocklist_address_key(address1="1 Beacon Street", zip="02134-0001", country="US")
    # Elsewhere a postcode's zeros are its own.
    assert blocklist_address_key(address1="1 X St", zip="0800", country="AU") != blocklist_address_key(
        address1="1 X St", zip="800", country="AU"
    )


@pytest.mark.django_db
def test_the_migration_derives_stored_keys_again_and_leaves_a_clash_alone() -> None:
    migration = importlib.import_module("campaigns.migrations.0010_blocklist_keys_restore_zip_zeros")
    short = BlocklistEntryFactory(address1="1 Beacon St", zip="2134", country="US")
    whole = BlocklistEntryFactory(address1="9 Elm St", zip="02134", country="US", organization=short.organization)
    twin = BlocklistEntryFactory(organization=short.organization)
    # As the entries were stored before the repair: a short ZIP keyed as written.
    BlocklistEntry.objects.filter(pk=short.pk).update(key="old-short")
    BlocklistEntry.objects.filter(pk=twin.pk).update(address1="9 Elm St", zip="2134", key="old-twin")
    migration.derive_again(apps, None)
    keys = dict(BlocklistEntry.objects.values_list("pk", "key"))
    assert keys[short.pk] == blocklist_address_key(address1="1 Beacon St", zip="02134", country="US")
    assert keys[twin.pk] == "old-twin"  # the same address as ``whole``: the unique key stays with it
    assert keys[whole.pk] == blocklist_address_key(address1="9 Elm St", zip="02134", country="US")


@pytest.mark.django_db
@pytest.mark.parametrize("status", [S.SKIPPED, S.SENT])
def test_recipients_imported_before_the_repair_are_found_again_by_a_re_import(status) -> None:
    """Migration 0011 keys the old rows as the import now keys them; a mailed
    record keeps the ZIP it was sent with, the others get the repaired one."""
    from campaigns.keys import natural_key

    migration = importlib.import_module("campaigns.migrations.0011_recipients_restore_zip_zeros")
    campaign = CampaignFactory(printer="lob")
    old = {"first_name": "Ada", "last_name": "Lovelace", "address1": "1 Beacon St", "zip": "2134", "country": "US"}
    CampaignRecipient.objects.create(
        campaign=campaign, status=status, city="Boston", state="MA", natural_key=natural_key(old), **old
    )
    migration.repair(apps, None)
    data = (
        b"First Name,Last Name,Address1,City,Province Code,Country Code,Zip\n"
        b"Ada,Lovelace,1 Beacon St,Boston,MA,US,2134\n"
    )
    campaign_import_file(campaign=campaign, file=io.BytesIO(data), actor=Actor("test"), source="again.csv")
    rows = list(campaign.recipients.values_list("status", "zip"))
    assert rows == [(status, "2134" if status == S.SENT else "02134")]


def _old_row(campaign, zip_code: str, status: str = S.SKIPPED, **extra) -> CampaignRecipient:
    from campaigns.keys import natural_key

    data = {"first_name": "Ada", "last_name": "Lovelace", "address1": "1 Beacon St", "zip": zip_code, "country": "US"}
    return CampaignRecipient.objects.create(
        campaign=campaign, status=status, city="Boston", state="MA", natural_key=natural_key(data), **data, **extra
    )


@pytest.mark.django_db
def test_the_migration_survives_two_rows_that_become_one_key_in_one_run() -> None:
    migration = importlib.import_module("campaigns.migrations.0011_recipients_restore_zip_zeros")
    campaign = CampaignFactory(printer="lob")
    first, second = _old_row(campaign, "2134-1234"), _old_row(campaign, "21341234")  # the same ZIP+4, typed twice
    old = second.natural_key
    migration.repair(apps, None)  # used to fail the unique constraint and stop the migrate
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.natural_key != old
    assert second.natural_key == old  # the clash keeps its key: nothing merged silently


@pytest.mark.django_db
def test_the_migration_leaves_the_zip_of_a_card_made_or_sent() -> None:
    from django.utils import timezone

    migration = importlib.import_module("campaigns.migrations.0011_recipients_restore_zip_zeros")
    campaign = CampaignFactory(printer="lob")
    sent_before = _old_row(
        campaign, "2134", status=S.SENDING_STAGED, first_attempt_at=timezone.now(), proof_url="p.png"
    )
    proofed = CampaignRecipient.objects.create(
        campaign=campaign, status=S.PROOFED, first_name="Luis", last_name="Rivera", address1="Calle 1",
        zip="601", country="US", proof_url="q.png", natural_key="k",
    )  # fmt: skip
    migration.repair(apps, None)
    sent_before.refresh_from_db()
    proofed.refresh_from_db()
    assert (sent_before.zip, proofed.zip) == ("2134", "601")  # the card shows it; its request was sent with it
