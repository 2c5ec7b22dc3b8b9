"""Bulk operations of the Shopify stand-in: the `bulkOperationRunQuery` mutation, the
`BulkOperation` object it makes (`currentBulkOperation`, `bulkOperation`, `bulkOperations`,
`node`) and the JSONL file a finished one serves.

What is modelled, and the evidence for it, is in docs/SHOPIFY_MODEL.md ("Bulk operations,
errors and retired tokens"). In short:
- The query is checked as Shopify checks it (the userErrors below were captured from a live
  shop, 2026-04, in airhorns/shopify-draft-proxy's conformance fixtures): one connection at
  least, at most five, nested at most two deep, `edges { node }` not `nodes`, no top-level
  `node`, a nested connection's parent node selects `id`, no connection inside a list.
- API 2026-01 and later run five query operations per shop at once, older versions one; the
  next gets OPERATION_IN_PROGRESS naming the running ones.
- The mutation costs 10 points. The operation answers CREATED, then RUNNING until
  `completion_delay` seconds (of the stand-in's clock) have passed, then COMPLETED (or FAILED
  when a failure was planned with `fail_next`). It reads the store when it finishes.
- The file: one JSON object per line; every connection is read whole (its paging arguments
  are ignored); a nested connection's nodes are lines of their own with `__parentId`, the id
  of the node they hang under; lists and objects that are not connections stay inside their
  line. `groupObjects: false` (the default since 2026-01) writes every root line first and
  then each level of children: children always after their parent, seldom directly after.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from graphql import (
    FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLError, GraphQLList, InlineFragmentNode,
    OperationDefinitionNode, OperationType, execute, get_named_type, get_nullable_type, is_composite_type, parse,
    validate,
)

from .graphql_api import _formatted, _resolve, _Run, is_connection, page, schema

MAX_CONNECTIONS = 5
MAX_DEPTH = 2
RESULT_TTL = timedelta(days=7)  # "url and partialDataUrl values expire after seven days"
EVERYTHING = 2**31 - 1          # a connection in a bulk query is read whole
ERROR_CODES = ("ACCESS_DENIED", "INTERNAL_SERVER_ERROR", "TIMEOUT")
TERMINAL = ("COMPLETED", "FAILED", "CANCELED", "EXPIRED")
_GID = re.compile(r"gid://shopify/(\w+)/(\d+)")
_VERSION = re.compile(r"(\d{4})-(\d{2})")


def concurrency_limit(version: str | None) -> int:
    """Bulk query operations an app may run at once on one shop: five from API 2026-01 (the
    bulk operations guide; captured on 2026-04), one before (captured on 2025-01)."""
    match = _VERSION.fullmatch(version or "")
    if version == "unstable" or (match and (int(match[1]), int(match[2])) >= (2026, 1)):
        return 5
    return 1 if match else 5


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(obj: dict) -> str:
    # Shopify's writer escapes "/" (its files read `"gid:\/\/shopify\/Order\/1"`); "/" can only
    # occur inside JSON strings, so the replacement is safe.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).replace("/", "\\/")


# --- checking a bulk query ----------------------------------------------------------------

@dataclass
class _Connection:
    """A connection of the bulk query: where it sits (response keys from the node it hangs
    under, or from the data root) and the connections nested in its nodes."""
    path: tuple
    children: list = field(default_factory=list)


class _Analysis:
    def __init__(self, schema_, document):
        self.schema = schema_
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.count = 0
        self.depth = 0
        self.nodes_fields: list[str] = []
        self.within_list = False
        self.without_id: list[str] = []

    def fields(self, type_, selection_set) -> list[tuple]:
        """(field node, the type that defines it) for every field selected on `type_`."""
        out: list[tuple] = []
        if selection_set is None:
            return out
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                out.append((sel, type_))
            elif isinstance(sel, InlineFragmentNode):
                cond = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else type_
                out.extend(self.fields(cond or type_, sel.selection_set))
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is not None:
                    out.extend(self.fields(self.schema.get_type(frag.type_condition.name.value) or type_,
                                           frag.selection_set))
        return out

    def walk(self, node: FieldNode, owner, depth: int, in_list: bool, parent: str | None, parent_has_id: bool,
             path: tuple) -> list[_Connection]:
        name = node.name.value
        definition = getattr(owner, "fields", {}).get(name)
        if definition is None or name.startswith("__"):
            return []
        named, nullable = get_named_type(definition.type), get_nullable_type(definition.type)
        key = path + ((node.alias or node.name).value,)
        if is_connection(named):
            selected = self.fields(named, node.selection_set)
            names = {f.name.value for f, _ in selected}
            if "edges" not in names:
                if "nodes" in names and name not in self.nodes_fields:
                    self.nodes_fields.append(name)
                return []
            self.count += 1
            self.depth = max(self.depth, depth + 1)
            self.within_list = self.within_list or in_list
            if parent is not None and not parent_has_id and parent not in self.without_id:
                self.without_id.append(parent)
            edge_type = get_named_type(named.fields["edges"].type)
            node_type = get_named_type(edge_type.fields["node"].type)
            node_fields = [nf for e, _ in selected if e.name.value == "edges"
                           for n, _ in self.fields(edge_type, e.selection_set) if n.name.value == "node"
                           for nf in self.fields(node_type, n.selection_set)]
            has_id = any(f.name.value == "id" and f.alias is None and f.selection_set is None for f, _ in node_fields)
            here = _Connection(key)
            for child, child_owner in node_fields:
                here.children.extend(self.walk(child, child_owner, depth + 1, in_list, name, has_id, ()))
            return [here]
        if not is_composite_type(named):
            return []
        in_list = in_list or isinstance(nullable, GraphQLList)
        found: list[_Connection] = []
        for child, child_owner in self.fields(named, node.selection_set):
            found.extend(self.walk(child, child_owner, depth, in_list, parent, parent_has_id, key))
        return found


def _invalid(message: str) -> dict:
    return {"field": ["query"], "message": message, "code": "INVALID"}


def check(query: str):
    """(document, connections, userErrors) of a bulk query, checked as Shopify checks it."""
    schema_ = schema()
    if not query.strip():
        return None, [], [_invalid("Invalid bulk query: syntax error, unexpected end of file")]
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, [], [_invalid(f"Invalid bulk query: {exc.message}")]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) == 1 and operations[0].operation != OperationType.QUERY:
        return None, [], [_invalid("Invalid operation type. Only `query` operations are supported.")]
    errors = validate(schema_, document)
    if errors:
        return None, [], [_invalid(f"Invalid bulk query: {_formatted(errors[0])['message']}")]
    if len(operations) != 1:
        return None, [], [_invalid("Invalid bulk query: a bulk query must hold exactly one operation")]
    analysis = _Analysis(schema_, document)
    top = analysis.fields(schema_.query_type, operations[0].selection_set)
    top = [(f, owner) for f, owner in top if not f.name.value.startswith("__")]
    connections: list[_Connection] = []
    for node, owner in top:
        connections.extend(analysis.walk(node, owner, 0, False, None, True, ()))
    top_names = [f.name.value for f, _ in top]
    out = []
    if analysis.nodes_fields:
        out.append(_invalid(
            "All connection fields in a bulk query must select their contents using 'edges' > 'node', e.g: "
            f"'{analysis.nodes_fields[0]} {{ edges {{ node {{'. Selecting via 'nodes' is not supported. "
            f"Invalid connection fields: '{', '.join(analysis.nodes_fields)}'."))
    top_node = next((n for n in ("node", "nodes") if n in top_names), None)
    if top_node:
        out.append(_invalid(f"Bulk queries cannot contain a top level `{top_node}` field."))
    if analysis.depth > MAX_DEPTH:
        out.append(_invalid(f"Bulk queries cannot contain connections with a nesting depth greater than {MAX_DEPTH}."))
    if analysis.count > MAX_CONNECTIONS:
        out.append(_invalid(f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections."))
    if analysis.without_id:
        out.append(_invalid(
            "The parent 'node' field for a nested connection must select the 'id' field without an alias and "
            f"must be of 'ID' return type. Connection fields without 'id': {', '.join(analysis.without_id)}."))
    if analysis.within_list:
        out.append(_invalid("Queries that contain a connection field within a list field are not currently supported."))
    if analysis.count == 0 and (not out or (top_node and len(out) == 1)):
        out.append(_invalid("Bulk queries must contain at least one connection."))
    if not out and len(set(top_names)) > 1:
        # The guide: "supports querying a single top-level field". Message not captured: ours.
        out.append(_invalid("Bulk queries must contain a single top level field."))
    return document, connections, out


# --- running one -------------------------------------------------------------------------

def _bulk_resolve(source, info, **args):
    """The stand-in's resolver, with every connection read whole: a bulk operation pages for you."""
    if is_connection(get_named_type(info.return_type)):
        args = {k: v for k, v in args.items() if k not in ("first", "last", "after", "before")}
        args["first"] = EVERYTHING
    return _resolve(source, info, **args)


def _dig(value, path: tuple):
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _without(obj: dict, paths: list[tuple]) -> dict:
    """A copy of `obj` without the nested connections at `paths`."""
    out = dict(obj)
    for path in paths:
        if len(path) == 1:
            out.pop(path[0], None)
        elif isinstance(out.get(path[0]), dict):
            out[path[0]] = _without(out[path[0]], [path[1:]])
    return out


def flatten(data: dict, connections: list[_Connection], grouped: bool) -> tuple[list[str], int]:
    """The JSONL lines of a bulk query's answer and how many are root objects."""
    levels: list[list[str]] = []
    ordered: list[str] = []

    def emit(connection: _Connection, holder, parent_id, depth):
        value = _dig(holder, connection.path)
        if not isinstance(value, dict):
            return
        for edge in value.get("edges") or []:
            node = edge.get("node") if isinstance(edge, dict) else None
            if not isinstance(node, dict):
                continue
            line = _without(node, [c.path for c in connection.children])
            if parent_id is not None:
                line["__parentId"] = parent_id
            text = _line(line)
            ordered.append(text)
            while len(levels) <= depth:
                levels.append([])
            levels[depth].append(text)
            for child in connection.children:
                emit(child, node, node.get("id"), depth + 1)

    for connection in connections:
        emit(connection, data or {}, None, 0)
    roots = len(levels[0]) if levels else 0
    return (ordered if grouped else [text for level in levels for text in level]), roots


@dataclass
class BulkOperation:
    number: int
    shop: str
    query: str
    group_objects: bool
    created_at: datetime
    version: str | None
    status: str = "CREATED"
    error_code: str | None = None
    completed_at: datetime | None = None
    finished_at: datetime | None = None
    object_count: int = 0
    root_object_count: int = 0
    file: bytes | None = None
    partial: bytes | None = None
    planned_failure: dict | None = None
    connections: list = field(default_factory=list)

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"


class BulkOperations:
    """Every shop's bulk operations. `root_for(shop, run)` is the QueryRoot a bulk query runs
    over; `lock` is held while it runs; `clock()` is the stand-in's clock; `base_url()` the
    stand-in's address, under which the files are served (GET /bulk/<n>.jsonl)."""

    def __init__(self, root_for, lock, clock, base_url):
        self.root_for = root_for
        self.lock = lock
        self.clock = clock
        self.base_url = base_url
        # One lock with the store's: an operation finishing reads the store, and a query that
        # reads the store may look at an operation (two locks could deadlock).
        self._lock = lock
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.operations: dict[int, BulkOperation] = {}
            self.completion_delay = 0.0  # seconds of the stand-in's clock an operation stays RUNNING
            self.concurrency_limit: int | None = None  # None: by API version (5 from 2026-01, else 1)
            self._next = 7_000_000_000_001
            self._planned: list[dict] = []

    # --- controls -----------------------------------------------------------------------

    def fail_next(self, n: int = 1, error_code: str = "INTERNAL_SERVER_ERROR", *, shop: str | None = None,
                  partial: bool = True) -> None:
        """The next `n` bulk operations (of `shop`, or of any shop) end FAILED with
        `error_code` (ACCESS_DENIED, INTERNAL_SERVER_ERROR or TIMEOUT); `partial` keeps the
        first half of their lines behind `partialDataUrl` (never for ACCESS_DENIED)."""
        if error_code not in ERROR_CODES:
            raise ValueError(f"error_code is one of {ERROR_CODES}, not {error_code!r}")
        with self._lock:
            self._planned.append({"shop": shop, "left": n, "error_code": error_code, "partial": partial})

    def fail(self, gid: str, error_code: str = "INTERNAL_SERVER_ERROR", *, partial: bool = True) -> None:
        """A running operation will end FAILED with `error_code` instead of completing."""
        if error_code not in ERROR_CODES:
            raise ValueError(f"error_code is one of {ERROR_CODES}, not {error_code!r}")
        with self._lock:
            op = self._by_gid(gid)
            if op is None or op.status in TERMINAL:
                raise ValueError(f"{gid} is not a running bulk operation")
            op.planned_failure = {"error_code": error_code, "partial": partial}

    def finish(self, gid: str | None = None) -> None:
        """Let a running operation (every one, without `gid`) end now, whatever the delay."""
        with self._lock:
            for op in list(self.operations.values()):
                if (gid is None or op.gid == gid) and op.status not in TERMINAL:
                    self._finish(op)

    def file(self, number: int) -> bytes | None:
        """The JSONL behind a `url` or `partialDataUrl`; None once gone (7 days) or never made."""
        with self._lock:
            op = self.operations.get(number)
            if op is None:
                return None
            self._advance(op)
            if op.status == "EXPIRED":
                return None
            return op.file if op.status == "COMPLETED" else op.partial

    # --- GraphQL ------------------------------------------------------------------------

    def mutation_root(self, shop: str, run) -> dict:
        def run_query(query, groupObjects=False, **_):
            return self.run_query(shop, query, bool(groupObjects), getattr(run, "version", None))
        return {"bulkOperationRunQuery": run_query}

    def extend_root(self, shop: str, root: dict) -> dict:
        """QueryRoot `root` plus the bulk operation fields, and `node`/`nodes` that know them."""
        node = root.get("node")

        def any_node(id, **args):
            if id.startswith("gid://shopify/BulkOperation/"):
                return self.node(shop, id)
            return node(id=id, **args) if node else None

        def by_id(id, **_):
            match = _GID.fullmatch(id)
            if not match:
                raise GraphQLError(f"Invalid global id '{id}'", extensions={"code": "argumentLiteralsIncompatible"})
            if match[1] != "BulkOperation":
                raise GraphQLError(f"Invalid id: {id}", extensions={"code": "RESOURCE_NOT_FOUND"})
            return self.node(shop, id)

        return {
            **root,
            "node": any_node,
            "nodes": lambda ids, **args: [any_node(i) for i in ids],
            "currentBulkOperation": lambda type="QUERY", **_: self.current(shop, type),
            "bulkOperation": by_id,
            "bulkOperations": lambda **args: self.listing(shop, args),
        }

    def run_query(self, shop: str, query: str, group_objects: bool, version: str | None) -> dict:
        document, connections, errors = check(query)
        if errors:
            return {"bulkOperation": None, "userErrors": errors}
        with self._lock:
            running = [op for op in self._of(shop) if self._advance(op) not in TERMINAL]
            limit = self.concurrency_limit or concurrency_limit(version)
            if len(running) >= limit:
                ids = ", ".join(op.gid for op in running)
                return {"bulkOperation": None, "userErrors": [{
                    "field": None, "code": "OPERATION_IN_PROGRESS",
                    "message": f"A bulk query operation for this app and shop is already in progress: {ids}."}]}
            op = BulkOperation(self._next, shop, query, group_objects, self.clock(), version,
                               planned_failure=self._take_planned(shop), connections=connections)
            self._next += 1
            self.operations[op.number] = op
            created = self._render(op)   # answered as CREATED, as Shopify does
            self._advance(op)            # ... though with no delay it may be done already
            return {"bulkOperation": created, "userErrors": []}

    def node(self, shop: str, gid: str) -> dict | None:
        with self._lock:
            op = self._by_gid(gid)
            if op is None or op.shop != shop:
                return None
            self._advance(op)
            return self._render(op)

    def current(self, shop: str, type_: str = "QUERY") -> dict | None:
        with self._lock:
            ops = self._of(shop) if type_ == "QUERY" else []   # the stand-in runs no bulk mutations
            if not ops:
                return None
            self._advance(ops[-1])
            return self._render(ops[-1])

    def listing(self, shop: str, args: dict) -> dict:
        """QueryRoot.bulkOperations: newest first; `query` filters on status, operation_type, id."""
        with self._lock:
            ops = self._of(shop)
            for op in ops:
                self._advance(op)
            wanted = {}
            for token in (args.get("query") or "").split():
                key, _, value = token.partition(":")
                wanted[key] = value.strip("'\"")
            found = [op for op in reversed(ops)
                     if wanted.get("status", op.status).upper() == op.status
                     and wanted.get("operation_type", "QUERY").upper() == "QUERY"
                     and wanted.get("id", op.gid) in (op.gid, str(op.number))]
            return page(found, args, keys=[op.number for op in found], descending=True, render=self._render)

    # --- inside -------------------------------------------------------------------------

    def _of(self, shop: str) -> list[BulkOperation]:
        return [op for op in self.operations.values() if op.shop == shop]

    def _by_gid(self, gid: str) -> BulkOperation | None:
        match = _GID.fullmatch(gid or "")
        if not match or match[1] != "BulkOperation":
            return None
        return self.operations.get(int(match[2]))

    def _take_planned(self, shop: str) -> dict | None:
        for planned in self._planned:
            if planned["shop"] in (None, shop):
                planned["left"] -= 1
                if planned["left"] <= 0:
                    self._planned.remove(planned)
                return {"error_code": planned["error_code"], "partial": planned["partial"]}
        return None

    def _advance(self, op: BulkOperation) -> str:
        """Move `op` along by the clock: RUNNING once made, done after `completion_delay`,
        EXPIRED seven days after it finished."""
        now = self.clock()
        if op.status in ("CREATED", "RUNNING"):
            if now >= op.created_at + timedelta(seconds=self.completion_delay):
                self._finish(op)
            else:
                op.status = "RUNNING"
        if op.status in ("COMPLETED", "FAILED") and op.finished_at and now >= op.finished_at + RESULT_TTL:
            op.status = "EXPIRED"
        return op.status

    def _finish(self, op: BulkOperation) -> None:
        run = _Run()
        run.version = op.version
        document = parse(op.query)
        with self.lock:
            result = execute(schema(), document, root_value=self.root_for(op.shop, run), context_value=run,
                             field_resolver=_bulk_resolve)
        lines, roots = flatten(result.data or {}, op.connections, op.group_objects)
        codes = {(e.extensions or {}).get("code") for e in result.errors or []}
        failure = op.planned_failure
        if failure is None and result.errors:
            failure = {"error_code": "ACCESS_DENIED" if "ACCESS_DENIED" in codes else "INTERNAL_SERVER_ERROR",
                       "partial": True}
        op.finished_at = self.clock()
        if failure is None:
            op.status, op.completed_at = "COMPLETED", op.finished_at
            op.file = "".join(line + "\n" for line in lines).encode()
            op.object_count, op.root_object_count = len(lines), roots
            return
        op.status, op.error_code = "FAILED", failure["error_code"]
        if failure["partial"] and failure["error_code"] != "ACCESS_DENIED" and lines:
            kept = lines[:max(1, len(lines) // 2)]
            op.partial = "".join(line + "\n" for line in kept).encode()
            op.object_count = len(kept)
            op.root_object_count = min(roots, len(kept))

    def _render(self, op: BulkOperation) -> dict:
        url = f"{self.base_url()}/bulk/{op.number}.jsonl"
        done = op.status == "COMPLETED"
        return {
            "__typename": "BulkOperation", "id": op.gid, "type": "QUERY", "status": op.status,
            "errorCode": op.error_code, "createdAt": _iso(op.created_at), "completedAt": _iso(op.completed_at),
            "objectCount": str(op.object_count), "rootObjectCount": str(op.root_object_count),
            "fileSize": str(len(op.file)) if done and op.file is not None else None,
            "url": url if done else None,
            "partialDataUrl": url if op.status == "FAILED" and op.partial is not None else None,
            "query": op.query,
        }


__all__ = ["BulkOperations", "BulkOperation", "check", "flatten", "concurrency_limit"]
