"""The stand-in's GraphQL Admin API engine: Shopify's real 2026-10 schema executed over plain
dicts, with Shopify's query cost and leaky-bucket throttling.

Execution: graphql-core runs the query against the introspected schema. A dict answers its
fields by key; a callable value is called with the field's arguments; a dict's `__typename`
picks the type behind an interface or union. A list served where the schema has a connection
is paged here (`first`/`after`/`last`/`before`/`reverse`, one of `first` or `last` required as
on Shopify), so every connection has `edges { cursor node }`, `nodes` and `pageInfo`.

Cost (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits): requestedQueryCost
is computed from the query before it runs: a scalar or enum costs 0, an object 1, a
connection 2 + `first` (or `last`) × the cost of one node (1 + what is selected in it), an
interface or union the dearest of its types' selections. actualQueryCost counts what came
back by the same rules (2 per connection, 1 per object returned). Approximations, since
Shopify publishes no rule for them: a list field that is not a connection costs `first` ×
one element, or one element without `first`; a connection asked for both `edges { node }`
and `nodes` is requested at the dearer of the two (and charged for both when it runs);
edges and `pageInfo` are free. The requested cost is taken from the bucket before the query
runs and the difference to the actual cost is given back afterwards, as Shopify does.

That is the documented rule taken at its word (`cost_rule = "documented"`, the default). Live
Shopify requests less: `cost_rule = "live"` reproduces every requestedQueryCost captured from a
real shop (docs/SHOPIFY_MODEL.md, "Query cost"): a connection 2 + ⌊2 ln first⌋ × one node, a
list one element whatever its `first`, a MoneyBag or MoneyV2 nothing. The documented rule is
never below it, so the default is the harsher.
"""
from __future__ import annotations

import base64
import binascii
import gzip
import json
import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from graphql import (
    FieldNode, FragmentDefinitionNode, FragmentSpreadNode, GraphQLError, GraphQLList, GraphQLObjectType,
    GraphQLSchema, InlineFragmentNode, OperationType, build_client_schema, execute, get_named_type,
    get_nullable_type, get_operation_ast, is_abstract_type, is_composite_type, is_leaf_type, parse, validate,
)
from graphql.execution.values import get_argument_values, get_directive_values, get_variable_values
from graphql.type import GraphQLIncludeDirective, GraphQLSkipDirective

SCHEMA_FILE = Path(__file__).with_name("admin-schema-2026-10.json.gz")
THROTTLE_DOCS = "https://shopify.dev/api/usage/rate-limits"
MUTATION_COST = 10  # what Shopify charges a mutation (captured: bulkOperationRunQuery requestedQueryCost 10)

_schema: GraphQLSchema | None = None
_schema_lock = threading.Lock()


def schema() -> GraphQLSchema:
    """The Admin API schema, built once per process (it takes most of a second)."""
    global _schema
    with _schema_lock:
        if _schema is None:
            with gzip.open(SCHEMA_FILE) as f:
                # assume_valid: graphql-core's strict checker rejects a few deprecation
                # inconsistencies in Shopify's schema; parsing and validation are unaffected.
                _schema = build_client_schema(json.load(f)["data"], assume_valid=True)
        return _schema


def is_connection(type_) -> bool:
    return (isinstance(type_, GraphQLObjectType) and type_.name.endswith("Connection")
            and "pageInfo" in type_.fields and "edges" in type_.fields)


def _is_edge(type_) -> bool:
    return isinstance(type_, GraphQLObjectType) and "cursor" in type_.fields and "node" in type_.fields


# --- paging ----------------------------------------------------------------------------

def encode_cursor(key) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str):
    try:
        return json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise GraphQLError(f"Invalid cursor for current pagination sort: {cursor!r}") from None


def page(nodes: list, args: dict, keys: list | None = None, descending: bool = False, render=None) -> dict:
    """A Relay connection over `nodes` (in order). `keys` make the cursors (the position when
    absent); `descending` says the keys fall along the list; `render`, when given, turns the
    nodes of the page (only those) into what is served."""
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    if (first is not None and first < 0) or (last is not None and last < 0):
        raise GraphQLError("first and last cannot be negative")
    keys = list(range(len(nodes))) if keys is None else keys
    if args.get("reverse"):
        nodes, keys, descending = nodes[::-1], keys[::-1], not descending

    def beyond(a, b):
        return a < b if descending else a > b

    positions = list(range(len(nodes)))
    if args.get("after") is not None:
        mark = decode_cursor(args["after"])
        positions = [i for i in positions if _compare(beyond, keys[i], mark)]
    if args.get("before") is not None:
        mark = decode_cursor(args["before"])
        positions = [i for i in positions if _compare(beyond, mark, keys[i])]
    if first is not None:
        positions = positions[:first]
    if last is not None:
        positions = positions[len(positions) - last:] if last else []
    served = [render(nodes[i]) if render else nodes[i] for i in positions]
    edges = [{"cursor": encode_cursor(keys[i]), "node": node} for i, node in zip(positions, served)]
    return {
        "edges": edges,
        "nodes": served,
        "pageInfo": {
            "hasNextPage": bool(positions) and positions[-1] < len(nodes) - 1,
            "hasPreviousPage": bool(positions) and positions[0] > 0,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


def _compare(beyond, a, b) -> bool:
    try:
        return beyond(a, b)
    except TypeError:
        raise GraphQLError("Invalid cursor for current pagination sort.") from None


# --- execution -------------------------------------------------------------------------

class _Run:
    """What one request accumulates while it executes: its actual cost and search warnings."""

    def __init__(self, version: str | None = None):
        self.cost = 0
        self.search: list[dict] = []
        self.version = version  # the API version in the request's path
        self.withheld: frozenset = frozenset()  # (type, field) pairs the shop withholds from the app


# Shopify's words for a field of protected customer data the app is not approved for
# (https://shopify.dev/docs/apps/launch/protected-customer-data, "GraphQL Admin API request with
# unapproved fields"): the field is null and the 200 answer carries this error at its path.
PROTECTED_DATA_MESSAGE = ("This app is not approved to access the {type} object. "
                          "See https://partners.shopify.com/1/apps/1/customer_data for more details.")


def _resolve(source, info, **args):
    if (info.parent_type.name, info.field_name) in info.context.withheld:
        raise GraphQLError(PROTECTED_DATA_MESSAGE.format(type=info.parent_type.name),
                           extensions={"code": "ACCESS_DENIED"})
    value = source.get(info.field_name) if isinstance(source, Mapping) else getattr(source, info.field_name, None)
    if callable(value):
        value = value(**args)
    return_type = get_nullable_type(info.return_type)
    named = get_named_type(return_type)
    if is_connection(named):
        if isinstance(value, list):
            value = page(value, args)
        info.context.cost += 2
    elif isinstance(return_type, GraphQLList) and isinstance(value, list) and args.get("first") is not None:
        value = value[:max(args["first"], 0)]
    if is_composite_type(named) and not is_connection(named) and _charged(info):
        info.context.cost += sum(v is not None for v in value) if isinstance(value, list) else value is not None
    return value


def _charged(info) -> bool:
    """Objects inside a connection are charged once each: as `nodes` or as an edge's `node`."""
    parent = info.parent_type
    if is_connection(parent):
        return info.field_name == "nodes"
    return not _is_edge(parent) or info.field_name == "node"


# --- cost ------------------------------------------------------------------------------

COST_RULES = ("documented", "live")
FREE_IN_LIVE = frozenset({"MoneyBag", "MoneyV2"})   # what live Shopify requests nothing for


def live_multiplier(size: int) -> int:
    """How many nodes live Shopify requests a connection at: ⌊2 ln first⌋ fits every capture
    (5 → 3, 50 → 7, 250 → 11); at least 1 for a page of one or more."""
    return max(1, math.floor(2 * math.log(size))) if size > 0 else 0


class _Costing:
    """requestedQueryCost of one operation, from the query text alone, by `rule` (COST_RULES)."""

    def __init__(self, schema_: GraphQLSchema, document, variables: dict, rule: str = "documented"):
        if rule not in COST_RULES:
            raise ValueError(f"cost rule is one of {COST_RULES}, not {rule!r}")
        self.schema = schema_
        self.rule = rule
        self.variables = variables
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def selection(self, type_, selection_sets: list) -> int:
        if is_abstract_type(type_):
            return max((self._object(t, selection_sets) for t in self.schema.get_possible_types(type_)), default=0)
        return self._object(type_, selection_sets)

    def _object(self, type_, selection_sets: list) -> int:
        total = 0
        for nodes in self._fields(type_, selection_sets).values():
            name = nodes[0].name.value
            if name.startswith("__"):
                continue
            definition = type_.fields[name]
            total += self._field(definition, nodes)
        return total

    def _field(self, definition, nodes: list[FieldNode]) -> int:
        named = get_named_type(definition.type)
        if is_leaf_type(named):
            return 0
        args = get_argument_values(definition, nodes[0], self.variables)
        subs = [n.selection_set for n in nodes if n.selection_set]
        live = self.rule == "live"
        if is_connection(named):
            size = max(args.get("first") if args.get("first") is not None else args.get("last") or 0, 0)
            return 2 + (live_multiplier(size) if live else size) * self._node(named, subs)
        one = (0 if live and named.name in FREE_IN_LIVE else 1) + self.selection(named, subs)
        if isinstance(get_nullable_type(definition.type), GraphQLList) and not live:
            return (args["first"] if args.get("first") is not None else 1) * one
        return one

    def _node(self, connection, subs: list) -> int:
        costs = [0]
        for nodes in self._fields(connection, subs).values():
            name = nodes[0].name.value
            inner = [n.selection_set for n in nodes if n.selection_set]
            if name == "nodes":
                costs.append(1 + self.selection(get_named_type(connection.fields["nodes"].type), inner))
            elif name == "edges":
                edge = get_named_type(connection.fields["edges"].type)
                for edge_nodes in self._fields(edge, inner).values():
                    if edge_nodes[0].name.value == "node":
                        node_subs = [n.selection_set for n in edge_nodes if n.selection_set]
                        costs.append(1 + self.selection(get_named_type(edge.fields["node"].type), node_subs))
        return max(costs)

    def _fields(self, type_, selection_sets: list) -> dict[str, list[FieldNode]]:
        """The fields asked of `type_` (fragments that apply to it included), by response key."""
        out: dict[str, list[FieldNode]] = {}
        for selection_set in selection_sets:
            self._collect(type_, selection_set, out)
        return out

    def _collect(self, type_, selection_set, out: dict) -> None:
        for sel in selection_set.selections:
            if not self._included(sel):
                continue
            if isinstance(sel, FieldNode):
                out.setdefault((sel.alias or sel.name).value, []).append(sel)
            elif isinstance(sel, InlineFragmentNode):
                if self._applies(sel.type_condition, type_):
                    self._collect(type_, sel.selection_set, out)
            elif isinstance(sel, FragmentSpreadNode):
                fragment = self.fragments.get(sel.name.value)
                if fragment and self._applies(fragment.type_condition, type_):
                    self._collect(type_, fragment.selection_set, out)

    def _applies(self, condition, type_) -> bool:
        if condition is None:
            return True
        wanted = self.schema.get_type(condition.name.value)
        return wanted is type_ or (is_abstract_type(wanted) and self.schema.is_sub_type(wanted, type_))

    def _included(self, node) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (skip and skip.get("if")) and not (include and include.get("if") is False)


# --- throttling ------------------------------------------------------------------------

@dataclass
class Bucket:
    available: float
    at: float


class GraphQLService:
    """Answers GraphQL requests for any shop: validate, cost, throttle, execute.

    `root_for(shop, run)` gives the root value of one request (`run.search` collects search
    warnings); `lock` is held while a query executes, so the store cannot change under it."""

    def __init__(self, root_for, lock, *, maximum_available: float = 2000, restore_rate: float = 100,
                 max_query_cost: int = 1000, monotonic=time.monotonic):
        self.root_for = root_for
        self.lock = lock
        self.maximum_available = maximum_available
        self.restore_rate = restore_rate
        self.max_query_cost = max_query_cost
        self.monotonic = monotonic
        self.cost_rule = "documented"   # or "live": what real shops were seen to request (_Costing)
        # Mutations: `mutation_root_for(shop, run)` gives the root of the few the stand-in runs
        # (bulkOperationRunQuery); any other mutation is refused. Each costs MUTATION_COST.
        self.mutation_root_for = None
        self.buckets: dict[str, Bucket] = {}
        self._buckets_lock = threading.Lock()

    # --- the bucket ------------------------------------------------------------------------

    def _bucket(self, shop: str) -> Bucket:
        now = self.monotonic()
        bucket = self.buckets.setdefault(shop, Bucket(float(self.maximum_available), now))
        bucket.available = min(float(self.maximum_available),
                               bucket.available + (now - bucket.at) * float(self.restore_rate))
        bucket.at = now
        return bucket

    def set_available(self, shop: str, available: float) -> None:
        with self._buckets_lock:
            self._bucket(shop).available = float(available)

    def available(self, shop: str) -> float:
        with self._buckets_lock:
            return self._bucket(shop).available

    def _cost(self, shop: str, requested: int, actual: int | None, available: float) -> dict:
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": float(self.maximum_available),
                                   "currentlyAvailable": int(available), "restoreRate": float(self.restore_rate)}}

    # --- a request -----------------------------------------------------------------------

    def answer(self, shop: str, query: str, variables: dict | None = None, operation_name: str | None = None,
               version: str | None = None) -> dict:
        """The JSON body Shopify would send (always with HTTP 200)."""
        schema_ = schema()
        try:
            document = parse(query)
        except GraphQLError as exc:
            return self._refused(shop, [_formatted(exc, "parseError")])
        errors = validate(schema_, document)
        if errors:
            return self._refused(shop, [_formatted(e) for e in errors])
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            return self._refused(shop, [{"message": "An operation name is required" if operation_name is None
                                         else f"No operation named {operation_name!r}",
                                         "extensions": {"code": "operationNotFound"}}])
        run = _Run(version)
        mutation_root = self._mutation_root(shop, run, operation)
        if operation.operation != OperationType.QUERY and mutation_root is None:
            return self._refused(shop, [{"message": "The Shopify stand-in answers queries and bulkOperationRunQuery only.",
                                         "extensions": {"code": "operationNotSupported"}}])
        coerced = get_variable_values(schema_, operation.variable_definitions or [], variables or {})
        if isinstance(coerced, list):
            return self._refused(shop, [_formatted(e, "variableMismatch") for e in coerced])
        if mutation_root is not None:
            requested = MUTATION_COST * sum(isinstance(sel, FieldNode) and sel.name.value != "__typename"
                                            for sel in operation.selection_set.selections)
        else:
            requested = _Costing(schema_, document, coerced, self.cost_rule).selection(
                schema_.query_type, [operation.selection_set])
        if requested > self.max_query_cost:
            return self._refused(shop, [_max_cost_error(requested, self.max_query_cost)], requested)
        with self._buckets_lock:
            bucket = self._bucket(shop)
            if bucket.available < requested:
                return {"errors": [{"message": "Throttled",
                                    "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOCS}}],
                        "extensions": {"cost": self._cost(shop, requested, None, bucket.available)}}
            bucket.available -= requested
        with self.lock:
            root = mutation_root if mutation_root is not None else self.root_for(shop, run)
            result = execute(schema_, document, root_value=root, context_value=run,
                             variable_values=variables or {}, operation_name=operation_name,
                             field_resolver=_resolve)
        if mutation_root is not None:
            run.cost = requested  # a mutation costs what it was asked at, whatever it returns
        with self._buckets_lock:
            bucket = self._bucket(shop)
            bucket.available = min(float(self.maximum_available), bucket.available + requested - run.cost)
            available = bucket.available
        body: dict = {}
        if result.errors:
            body["errors"] = [e.formatted for e in result.errors]
        body["data"] = result.data
        body["extensions"] = {"cost": self._cost(shop, requested, run.cost, available)}
        if run.search:
            body["extensions"]["search"] = run.search
        return body

    def _mutation_root(self, shop: str, run, operation):
        """The root for a mutation the stand-in runs (every root field one it knows), else None."""
        if operation.operation != OperationType.MUTATION or self.mutation_root_for is None:
            return None
        root = self.mutation_root_for(shop, run)
        selections = operation.selection_set.selections
        if all(isinstance(sel, FieldNode) and (sel.name.value in root or sel.name.value == "__typename")
               for sel in selections):
            return root
        return None

    def _refused(self, shop: str, errors: list[dict], requested: int = 0) -> dict:
        with self._buckets_lock:
            available = self._bucket(shop).available
        return {"errors": errors, "extensions": {"cost": self._cost(shop, requested, None, available)}}


# --- errors ----------------------------------------------------------------------------

# graphql-core's wording → graphql-ruby's (which Shopify runs): message and error code.
_SHOPIFY_WORDING = [
    (re.compile(r"Cannot query field '(\w+)' on type '(\w+)'\..*"),
     lambda m: (f"Field '{m[1]}' doesn't exist on type '{m[2]}'", "undefinedField")),
    (re.compile(r"Unknown argument '(\w+)' on field '\w+\.(\w+)'\..*"),
     lambda m: (f"Field '{m[2]}' doesn't accept argument '{m[1]}'", "argumentNotAccepted")),
    (re.compile(r"Argument '\w+\.(\w+)\((\w+):\)' of type '.+' is required, but it was not provided\."),
     lambda m: (f"Field '{m[1]}' is missing required arguments: {m[2]}", "missingRequiredArguments")),
    (re.compile(r"Unknown type '(\w+)'\..*"), lambda m: (f"No such type {m[1]}, so it can't be a fragment condition",
                                                        "undefinedType")),
    (re.compile(r"Field '(\w+)' of type '.+' must have a selection of subfields\..*"),
     lambda m: (f"Field must have selections (field '{m[1]}' returns an object)", "selectionMismatch")),
    (re.compile(r"Variable '\$(\w+)' is never used.*"),
     lambda m: (f"Variable ${m[1]} is declared by anonymous query but not used", "variableNotUsed")),
    (re.compile(r"Variable '\$(\w+)' is not defined.*"),
     lambda m: (f"Variable ${m[1]} is used by anonymous query but not declared", "variableNotDefined")),
]


def _formatted(error: GraphQLError, default_code: str = "validationError") -> dict:
    message, code = error.message, default_code
    for pattern, rewrite in _SHOPIFY_WORDING:
        match = pattern.fullmatch(error.message)
        if match:
            message, code = rewrite(match)
            break
    out = {"message": message}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    out["extensions"] = {"code": code}
    return out


def _max_cost_error(cost: int, limit: int) -> dict:
    return {
        "message": (f"Query cost is {cost}, which exceeds the single query max cost limit ({limit}).\n\n"
                    "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
                    "cost of a query is calculated.\n\n"
                    "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
                    "See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"),
        "extensions": {"code": "MAX_COST_EXCEEDED", "cost": cost, "maxCost": limit},
    }
