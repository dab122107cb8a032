"""Veeam Enterprise Manager representations: one resource tree, written as XML in the
`http://www.veeam.com/ent/v1.0` namespace (EM's default) or as JSON with the same PascalCase
names (attributes and child elements both become keys; `<Links><Link/>…</Links>` becomes
`"Links": […]`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import orjson

NS = "http://www.veeam.com/ent/v1.0"
XML = "application/xml; charset=utf-8"
JSON = "application/json; charset=utf-8"

Scalar = Union[str, int, bool]  # noqa: UP007 - used at runtime


@dataclass
class Node:
    """An element: attributes, then children in order."""

    tag: str
    attrs: dict[str, Scalar] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    def add(self, name: str, value: Scalar) -> Node:
        """A scalar child element (chainable)."""
        self.children.append(Field(name, value))
        return self


@dataclass
class Field:
    """A child element holding text (a boolean is `true`/`false` in XML)."""

    name: str
    value: Scalar


@dataclass
class Many:
    """Repeated children: inside a `wrapper` element (JSON key = wrapper), or directly
    (JSON key = item tag + "s")."""

    item: str
    items: list[Node]
    wrapper: str | None = None

    @property
    def key(self) -> str:
        return self.wrapper or self.item + "s"


Child = Union[Field, Node, Many]  # noqa: UP007 - used at runtime


def links(*rows: Mapping[str, str]) -> Many:
    """A `Links` list of `Link` elements (attributes Href, Name, Type, Rel)."""
    return Many("Link", [Node("Link", dict(row)) for row in rows], wrapper="Links")


def encode(node: Node, as_json: bool) -> tuple[bytes, str]:
    """The body and content type of `node`: XML in NS (EM's default), or JSON with the same
    names (attributes and child elements both become keys)."""
    if as_json:
        return orjson.dumps(to_json(node)), JSON
    return ET.tostring(_element(node), encoding="utf-8", xml_declaration=True), XML


def to_json(node: Node) -> dict[str, Any]:
    """The JSON object of an element."""
    out: dict[str, Any] = dict(node.attrs)
    for child in node.children:
        if isinstance(child, Field):
            out[child.name] = child.value
        elif isinstance(child, Node):
            out[child.tag] = to_json(child)
        else:
            out[child.key] = [to_json(item) for item in child.items]
    return out


def _text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _element(node: Node, parent: ET.Element | None = None) -> ET.Element:
    # plain tags under a default namespace declared on the root: every element is in NS
    attrs = {name: _text(value) for name, value in node.attrs.items()}
    if parent is None:
        element = ET.Element(node.tag, {"xmlns": NS, **attrs})
    else:
        element = ET.SubElement(parent, node.tag, attrs)
    for child in node.children:
        if isinstance(child, Field):
            ET.SubElement(element, child.name).text = _text(child.value)
        elif isinstance(child, Node):
            _element(child, element)
        else:
            holder = element if child.wrapper is None else ET.SubElement(element, child.wrapper)
            for item in child.items:
                _element(item, holder)
    return element
