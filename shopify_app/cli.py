"""Command-line tools (`flask --app shopify_app ...`): migrations, a shop's settings, retries,
re-encryption under the newest key."""
from __future__ import annotations

import click
from flask import Blueprint, current_app

from . import accounting, crypto, db, documents, shop_settings, shops

bp = Blueprint("cli", __name__, cli_group=None)


@bp.cli.command("migrate")
def migrate_command():
    """Apply the database migrations (safe to run twice)."""
    applied = db.migrate(current_app.config["SETTINGS"].database_url or None)
    click.echo(f"applied: {', '.join(applied)}" if applied else "database is up to date")


def _shop_id(domain: str) -> int:
    row = shops.get(domain) if shops.valid_shop_domain(domain) else None
    if row is None:
        raise click.ClickException(f"no installed shop {domain!r}")
    return row["id"]


@bp.cli.command("shop-settings")
@click.argument("shop")
@click.option("--payday-client-id")
@click.option("--payday-secret", help="Payday client secret (stored encrypted)")
@click.option("--payday-env", type=click.Choice(["production", "test"]))
@click.option("--payment-type", multiple=True, metavar="GATEWAY=PAYMENT_TYPE_ID",
              help="map a Shopify gateway (exact name, e.g. a POS custom type) to a Payday payment type")
@click.option("--send-email/--no-send-email", default=None)
@click.option("--kennitala-from-company/--no-kennitala-from-company", default=None)
@click.option("--auto/--no-auto", "auto_process", default=None, help="automatic processing")
@click.option("--invoices-from", type=click.DateTime(formats=["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="invoice returns closed and refunds made from this day (the company's time: Iceland's for "
                   "Payday, Denmark's for the Danish systems); an earlier day backfills")
def shop_settings_command(shop, payday_client_id, payday_secret, payday_env, payment_type, send_email,
                          kennitala_from_company, auto_process, invoices_from):
    """Show or change a shop's settings for the invoicing pipeline."""
    shop_id = _shop_id(shop)
    changes = {k: v for k, v in {
        "payday_client_id": payday_client_id, "payday_client_secret": payday_secret,
        "payday_environment": payday_env, "send_email": send_email,
        "kennitala_from_company": kennitala_from_company, "auto_process": auto_process,
        "invoices_from": invoices_from and invoices_from.replace(
            tzinfo=accounting.ZONES[shop_settings.load(shop_id).accounting])}.items() if v is not None}
    if payment_type:
        mapping = dict(shop_settings.load(shop_id).payment_types)
        for pair in payment_type:
            gateway, sep, type_id = pair.partition("=")
            if not sep:
                raise click.BadParameter(f"{pair!r} is not GATEWAY=PAYMENT_TYPE_ID")
            mapping[gateway] = type_id
        changes["payment_types"] = mapping
    try:
        current = shop_settings.save(shop_id, **changes) if changes else shop_settings.load(shop_id)
    except ValueError as exc:
        raise click.ClickException(str(exc))
    for name, value in current.__dict__.items():
        click.echo(f"{name}: {'(set)' if name == 'payday_client_secret' and value else value}")


@bp.cli.command("retry-document")
@click.argument("shop")
@click.argument("document_id", type=int)
def retry_document_command(shop, document_id):
    """Give a failed credit invoice a fresh round of attempts."""
    shop_id = _shop_id(shop)
    if not documents.retry(document_id, shop_id):
        raise click.ClickException("no failed document with that id in this shop")
    click.echo("queued")


@bp.cli.command("rotate-keys")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10000),
              help="rows re-encrypted per transaction")
def rotate_keys_command(batch_size):
    """Re-encrypt every encrypted column under the newest key (the first of ENCRYPTION_KEY).

    Put the new key first in ENCRYPTION_KEY (keeping the old ones after it), deploy, run this;
    once it reports nothing left under an older key, the old keys can be removed. Safe to run
    again: values already under the newest key are left alone."""
    try:
        counts = crypto.rotate_stored(batch_size=batch_size, report=click.echo)
    except crypto.EncryptionKeyError as exc:
        raise click.ClickException(str(exc))
    for name, tally in counts.items():
        click.echo(f"{name}: {tally['rotated']} re-encrypted, {tally['current']} already under the newest key"
                   + (f", {tally['unreadable']} readable with none of the keys" if tally["unreadable"] else ""))
    unreadable = sum(t["unreadable"] for t in counts.values())
    if unreadable:
        raise click.ClickException(f"{unreadable} values could not be decrypted with any key in ENCRYPTION_KEY: "
                                   "keep the key that encrypted them")
    click.echo("every encrypted value is under the newest key; older keys can be removed from ENCRYPTION_KEY")
