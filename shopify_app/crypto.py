"""Encryption at rest for access tokens and Payday secrets (Fernet: AES-128-CBC + HMAC).

ENCRYPTION_KEY holds one or more keys, newest first: values are written with the first and
read with any, so keys rotate without downtime (`rotate` re-encrypts with the newest)."""
from __future__ import annotations

import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class EncryptionKeyError(RuntimeError):
    pass


def _fernet(keys: str | None = None) -> MultiFernet:
    raw = keys if keys is not None else os.environ.get("ENCRYPTION_KEY", "")
    parts = [k.strip() for k in raw.split(",") if k.strip()]
    if not parts:
        raise EncryptionKeyError("ENCRYPTION_KEY is not set")
    try:
        return MultiFernet([Fernet(k) for k in parts])
    except (ValueError, TypeError) as exc:
        raise EncryptionKeyError("ENCRYPTION_KEY must be url-safe base64 Fernet keys") from exc


def encrypt(value: str | None) -> bytes | None:
    if value is None:
        return None
    return _fernet().encrypt(value.encode())


def decrypt(value: bytes | memoryview | None) -> str | None:
    if value is None:
        return None
    try:
        return _fernet().decrypt(bytes(value)).decode()
    except InvalidToken as exc:
        raise EncryptionKeyError("a stored secret cannot be decrypted with ENCRYPTION_KEY") from exc


def rotate(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else _fernet().rotate(bytes(value))


# --- re-encrypting what is stored (`flask --app shopify_app rotate-keys`) ----------------------

def newest_key_reads(value: bytes | memoryview) -> bool:
    """Whether `value` is already encrypted under the newest key (the first of ENCRYPTION_KEY)."""
    newest = [k.strip() for k in os.environ.get("ENCRYPTION_KEY", "").split(",") if k.strip()][:1]
    if not newest:
        raise EncryptionKeyError("ENCRYPTION_KEY is not set")
    try:
        Fernet(newest[0]).decrypt(bytes(value))
        return True
    except InvalidToken:
        return False


def encrypted_columns(conn) -> dict[str, tuple[list[str], list[str]]]:
    """Every encrypted column in the database: bytea columns named *_enc, by table, with the
    table's primary key columns. Found in the catalogue, so a new one is never left out."""
    found: dict[str, tuple[list[str], list[str]]] = {}
    for row in conn.execute(
            r"""SELECT c.table_name, array_agg(c.column_name::text ORDER BY c.ordinal_position) AS columns
                FROM information_schema.columns c
                WHERE c.table_schema = current_schema() AND c.data_type = 'bytea' AND c.column_name LIKE '%\_enc'
                GROUP BY c.table_name ORDER BY c.table_name"""):
        key = conn.execute(
            """SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum)) AS key
               FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = to_regclass(%s) AND i.indisprimary""", (row["table_name"],)).fetchone()["key"]
        if not key:
            raise RuntimeError(f"table {row['table_name']} has encrypted columns but no primary key")
        found[row["table_name"]] = (list(key), list(row["columns"]))
    return found


def rotate_stored(batch_size: int = 200, report=print) -> dict[str, dict[str, int]]:
    """Re-encrypt every stored encrypted value under the newest key, `batch_size` rows of a table
    per transaction (the rows locked while they change). Values already under the newest key are
    left as they are, so a second run changes nothing. Returns, per table.column, how many values
    were re-encrypted, were already current, or could be read with none of the keys."""
    from psycopg import sql

    from . import db

    fernet = _fernet()
    with db.transaction() as conn:
        tables = encrypted_columns(conn)
    counts: dict[str, dict[str, int]] = {}
    for table, (key, columns) in tables.items():
        for column in columns:
            counts[f"{table}.{column}"] = {"rotated": 0, "current": 0, "unreadable": 0}
        key_ids = sql.SQL(", ").join(map(sql.Identifier, key))
        select = sql.SQL("SELECT {key}, {columns} FROM {table} WHERE ({any_set}) {after} "
                         "ORDER BY {key} LIMIT %(limit)s FOR UPDATE")
        base = dict(key=key_ids, columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
                    table=sql.Identifier(table),
                    any_set=sql.SQL(" OR ").join(sql.SQL("{} IS NOT NULL").format(sql.Identifier(c)) for c in columns))
        key_values = sql.SQL(", ").join(sql.Placeholder(f"k{i}") for i in range(len(key)))
        last = None
        while True:
            after = sql.SQL("AND ({}) > ({})").format(key_ids, key_values) if last is not None else sql.SQL("")
            params = {"limit": batch_size, **{f"k{i}": v for i, v in enumerate(last or ())}}
            with db.transaction() as conn:
                rows = conn.execute(select.format(after=after, **base), params).fetchall()
                for row in rows:
                    changes = {}
                    for column in columns:
                        value = row[column]
                        if value is None:
                            continue
                        tally = counts[f"{table}.{column}"]
                        if newest_key_reads(value):
                            tally["current"] += 1
                            continue
                        try:
                            changes[column] = fernet.rotate(bytes(value))
                            tally["rotated"] += 1
                        except InvalidToken:
                            tally["unreadable"] += 1
                    if changes:
                        sets = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c))
                                                  for c in changes)
                        conn.execute(sql.SQL("UPDATE {table} SET {sets} WHERE ({key}) = ({values})").format(
                            table=sql.Identifier(table), sets=sets, key=key_ids, values=key_values),
                            {**changes, **{f"k{i}": row[k] for i, k in enumerate(key)}})
            if rows:
                last = [rows[-1][k] for k in key]
                report(f"{table}: {len(rows)} rows checked")
            if len(rows) < batch_size:
                break
    return counts
