"""What assistive technology gets from a page: axe-core's verdict, run inside the page, and
Chromium's own accessibility tree (roles, names, heading levels, as a screen reader reads them,
through open shadow roots, so the same checks hold for Polaris' components and their stand-ins)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.browser.conftest import ROOT

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
# Chromium's roles for what a merchant types into or picks from.
FORM_CONTROL_ROLES = {"textbox", "searchbox", "combobox", "listbox", "spinbutton", "checkbox", "radio", "switch",
                      "slider", "date", "Date", "DateTime", "InputTime", "PopUpButton"}
NAMED_ROLES = FORM_CONTROL_ROLES | {"button", "heading", "main"}

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, tags: v.tags,
    nodes: v.nodes.map(n => ({target: n.target.map(t => [].concat(t).join(' >>> ')).join(' '),
                              impact: n.impact, html: n.html.slice(0, 200), summary: n.failureSummary})),
  }));
}"""


def axe_violations(page) -> list[dict]:
    """Every axe-core violation on the page (all impacts; the caller picks)."""
    if not AXE.exists():
        pytest.skip(f"accessibility check skipped: no {AXE.relative_to(ROOT)}; `make test` installs it "
                    "with npm (npm ci), which needs Node.js")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(AXE_RUN)


def blocking(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in BLOCKING]


def describe_violations(violations: list[dict]) -> str:
    return "\n".join(f"  {v['id']} ({v['impact']}): {v['help']}\n"
                     + "\n".join(f"    - {n['target']}   {n['html']}" for n in v["nodes"][:8])
                     + (f"\n    … and {len(v['nodes']) - 8} more" if len(v["nodes"]) > 8 else "")
                     for v in violations)


@dataclass
class AxNode:
    role: str
    name: str
    level: int | None
    element: str   # the DOM element, e.g. select#payday-environment, for the failure message


def ax_tree(page) -> list[AxNode]:
    """The nodes of Chromium's accessibility tree that assistive technology gets (not the ignored
    ones), without the browser's own parts of native controls (a date field's "Show date picker"
    button and its day/month/year spinners belong to the field, which is checked itself)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("Accessibility.enable")
        nodes = [n for n in cdp.send("Accessibility.getFullAXTree")["nodes"] if not n.get("ignored")]
        found = []
        for n in nodes:
            role = (n.get("role") or {}).get("value") or ""
            props = {p["name"]: (p.get("value") or {}).get("value") for p in n.get("properties", [])}
            element = ""
            # Naming the element costs round trips: only for the roles the checks look at.
            if role in NAMED_ROLES and n.get("backendDOMNodeId") is not None:
                if _inside_a_native_control(cdp, n["backendDOMNodeId"]):
                    continue
                element = _element(cdp, n["backendDOMNodeId"])
            found.append(AxNode(role=role, name=((n.get("name") or {}).get("value") or "").strip(),
                                level=props.get("level"), element=element))
        return found
    finally:
        cdp.detach()


def _inside_a_native_control(cdp, backend_id) -> bool:
    obj = cdp.send("DOM.resolveNode", {"backendNodeId": backend_id})["object"]
    try:
        return cdp.send("Runtime.callFunctionOn", {
            "objectId": obj["objectId"], "returnByValue": True,
            "functionDeclaration": "function () { const root = this.getRootNode(); "
                                   "return !!root.host && ['INPUT', 'SELECT', 'TEXTAREA', 'VIDEO', 'AUDIO']"
                                   ".includes(root.host.tagName); }"})["result"]["value"]
    finally:
        cdp.send("Runtime.releaseObject", {"objectId": obj["objectId"]})


def _element(cdp, backend_id) -> str:
    node = cdp.send("DOM.describeNode", {"backendNodeId": backend_id})["node"]
    attrs = dict(zip(node.get("attributes", [])[::2], node.get("attributes", [])[1::2]))
    text = node["nodeName"].lower()
    if attrs.get("id"):
        text += f"#{attrs['id']}"
    for name in ("name", "type", "data-testid", "data-action", "class", "aria-label"):
        if attrs.get(name):
            text += f'[{name}="{attrs[name]}"]'
    return text
