"""Microsoft's CSDL (`tests/data/graph-spec/`) as an oracle for JSON: which properties exist on
which type, derived types included, and a check of a JSON document against a declared type."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC = Path(__file__).resolve().parents[1] / "data" / "graph-spec"
PROD = SPEC / "v1.0-Prod.slice.xml"
FAIRFAX = SPEC / "v1.0-Fairfax.slice.xml"
_COLLECTION = re.compile(r"^Collection\((.+)\)$")
# Documented in Microsoft's reference, not visible in the schema (README.md here): the actual
# type of a property whose declared type is a base type.
ACTUAL = {("meetingParticipantInfo", "identity"): "communicationsIdentitySet",
          ("attendanceRecord", "identity"): "communicationsUserIdentity"}


@dataclass
class Schema:
    types: dict[str, tuple[str | None, dict[str, str]]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Schema:
        schema = cls()
        root = ET.fromstring(path.read_text(encoding="utf-8"))
        for node in root:
            if node.tag not in ("EntityType", "ComplexType", "EnumType"):
                continue
            name = node.get("Name", "")
            if name in schema.types:
                continue  # a later namespace's type of the same name: keep graph's
            props = {p.get("Name", ""): p.get("Type", "")
                     for p in node if p.tag in ("Property", "NavigationProperty")}
            base = node.get("BaseType")
            schema.types[name] = (_short(base) if base else None,
                                  props if node.tag != "EnumType" else {})
        return schema

    def exists(self, name: str) -> bool:
        return name in self.types

    def properties(self, name: str) -> dict[str, str]:
        props: dict[str, str] = {}
        current: str | None = name
        while current and current in self.types:
            base, own = self.types[current]
            props = {**own, **props}
            current = base
        return props

    def derives(self, name: str, ancestor: str) -> bool:
        current: str | None = name
        while current:
            if current == ancestor:
                return True
            current = self.types.get(current, (None, {}))[0]
        return False

    def property_type(self, owner: str, prop: str) -> tuple[str | None, bool]:
        """(type name or None for a primitive, is_collection) of `owner.prop`."""
        raw = self.properties(owner).get(prop, "")
        many = _COLLECTION.match(raw)
        inner = many.group(1) if many else raw
        if inner.startswith("Edm.") or not inner:
            return None, bool(many)
        return ACTUAL.get((owner, prop), _short(inner)), bool(many)


def _short(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1]


def actual_type(schema: Schema, declared: str, value: dict[str, Any],
                problems: list[str], where: str) -> str:
    """The type a JSON object claims (`@odata.type`), which must derive from the declared one."""
    claimed = value.get("@odata.type")
    if not isinstance(claimed, str):
        return declared
    name = claimed.removeprefix("#microsoft.graph.").removeprefix("#")
    if not schema.exists(name):
        problems.append(f"{where}: @odata.type {claimed} is not in the schema")
        return declared
    if not schema.derives(name, declared):
        problems.append(f"{where}: {name} does not derive from the declared {declared}")
    return name


def check(schema: Schema, value: Any, type_name: str | None, where: str,
          problems: list[str]) -> None:
    """Every property of `value` (JSON) must exist on `type_name` or the type it claims."""
    if type_name is None or value is None:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check(schema, item, type_name, f"{where}[{i}]", problems)
        return
    if not isinstance(value, dict):
        return
    actual = actual_type(schema, type_name, value, problems, where)
    props = schema.properties(actual)
    for key, item in value.items():
        if key.startswith("@odata."):
            continue
        if key not in props:
            problems.append(f"{where}.{key}: no such property on {actual}")
            continue
        inner, _many = schema.property_type(actual, key)
        check(schema, item, inner, f"{where}.{key}", problems)


def check_collection(schema: Schema, body: dict[str, Any], item_type: str, where: str,
                     problems: list[str]) -> None:
    """An OData collection answer: `value` items of `item_type`, annotations besides."""
    for key in body:
        if key != "value" and not key.startswith("@odata."):
            problems.append(f"{where}.{key}: not part of a collection answer")
    check(schema, body.get("value"), item_type, f"{where}.value", problems)
