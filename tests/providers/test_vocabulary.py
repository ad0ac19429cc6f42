"""The declaration vocabulary's converters and field kinds, both directions."""

from __future__ import annotations

import pytest

from unicrm.outbound.auth import auth_headers
from unicrm.providers.declaration import (
    SKIP,
    Auth,
    ConversionError,
    CustomFieldList,
    EpochTime,
    LookupRef,
    TagNames,
    TypedRef,
)


def test_epoch_seconds_and_milliseconds() -> None:
    assert EpochTime().read(1735689600, {}) == "2025-01-01T00:00:00Z"
    assert EpochTime(ms=True).read(1735689600123, {}) == "2025-01-01T00:00:00.123Z"
    assert EpochTime().write("2025-01-01T01:00:00+01:00", {}) == 1735689600
    assert EpochTime(ms=True).write("2025-01-01T00:00:00.5Z", {}) == 1735689600500
    assert EpochTime().read("soon", {}) is None


def test_lookup_ref_names_from_a_lookup() -> None:
    lookups = {"users": {"7": {"first_name": "Ana", "last_name": "Lopez"}, "8": "Ben"}}
    ref = LookupRef("users", numeric=True)
    assert ref.read(7, lookups) == {"id": "7", "name": "Ana Lopez"}
    assert ref.read("8", lookups) == {"id": "8", "name": "Ben"}
    assert ref.read("9", lookups) == {"id": "9", "name": None}
    assert ref.write({"id": "7"}, lookups) == 7
    with pytest.raises(ConversionError):
        ref.write({"id": "x"}, lookups)
    many = LookupRef("users", many=True, id_key="user_id")
    assert many.read([{"user_id": "7"}, "8", None], lookups) == [{"id": "7", "name": "Ana Lopez"}, {"id": "8", "name": "Ben"}]
    assert many.write([{"id": "7"}], lookups) == ["7"]


def test_typed_ref_one_slot_two_fields() -> None:
    org = TypedRef("organisation", numeric=True)
    person = TypedRef("person", numeric=True, many=True, too_many="one main party")
    party = {"id": 5, "type": "person", "firstName": "Ana", "lastName": "Lopez"}
    assert org.read(party, {}) is None
    assert person.read(party, {}) == [{"id": "5", "name": "Ana Lopez"}]
    assert org.read({"id": 9, "type": "organisation", "name": "Acme"}, {}) == {"id": "9", "name": "Acme"}
    assert person.write([{"id": "5"}], {}) == {"id": 5}
    assert person.write([], {}) is SKIP
    with pytest.raises(ConversionError, match="one main party"):
        person.write([{"id": "5"}, {"id": "6"}], {})


def test_tag_names_plain_strings_and_objects() -> None:
    plain = TagNames()
    assert plain.read(["a", "b"], {}) == [{"id": "a", "name": "a"}, {"id": "b", "name": "b"}]
    assert plain.write([{"name": "a"}, {"id": "b"}], {}) == ["a", "b"]
    keyed = TagNames(key="TAG_NAME")
    assert keyed.read([{"TAG_NAME": "x"}], {}) == [{"id": "x", "name": "x"}]
    assert keyed.write([{"name": "x"}], {}) == [{"TAG_NAME": "x"}]
    with_ids = TagNames(key="name", id_key="id", numeric_id=True)
    assert with_ids.read([{"id": 3, "name": "x"}], {}) == [{"id": "3", "name": "x"}]
    assert with_ids.write([{"name": "x"}, {"id": "3"}], {}) == [{"name": "x"}, {"id": 3}]


def test_custom_fields_by_definition_id_shown_by_name() -> None:
    lookups = {"defs": {"Budget": 312, "PO number": 311}}
    conv = CustomFieldList("definition.id", lookup="defs", numeric=True)
    items = [{"definition": {"id": 311}, "value": "PO-1"}, {"definition": {"id": 999}, "value": 2}]
    assert conv.read(items, lookups) == {"PO number": "PO-1", "999": 2}
    assert conv.write({"Budget": 5, "311": "PO-2"}, lookups) == [
        {"definition": {"id": 312}, "value": 5},
        {"definition": {"id": 311}, "value": "PO-2"},
    ]
    with pytest.raises(ConversionError, match="known fields: Budget, PO number"):
        conv.write({"Colour": "red"}, lookups)
    flat = CustomFieldList("id", write_id_path="id")
    assert flat.read([{"id": "abc", "value": 1}], {}) == {"abc": 1}
    assert flat.write({"abc": 1}, {}) == [{"id": "abc", "value": 1}]


def test_custom_header_auth_sends_no_authorization() -> None:
    headers = auth_headers(Auth("header", token_key="api_key", header_name="X-Api-Key"), {"api_key": "k-123"})
    assert headers == {"X-Api-Key": "k-123"}


def test_old_names_keep_working() -> None:
    """list_path on the provider (now Endpoint.records_path) and Lookup(value="") still work."""
    import dataclasses

    from unicrm.engine.mapping import get_path
    from unicrm.providers.capsule import PROVIDER

    endpoints = dict(PROVIDER.endpoints)
    endpoints["list"] = dataclasses.replace(endpoints["list"], records_path=None)
    old = dataclasses.replace(PROVIDER, endpoints=endpoints, list_path="kases")
    assert old.records_path == PROVIDER.records_path == "kases"
    record = {"id": 1, "name": "x"}
    assert get_path(record, "") is record and get_path(record, None) is record  # value="" and WHOLE_RECORD


def test_sibling_ref_reads_the_id_and_the_embedded_name_and_id_of_writes_the_id() -> None:
    from unicrm.providers.declaration import IdOf, sibling_ref

    read = sibling_ref("owner_id", "owner", "formatted_name")
    assert read({"owner_id": "u1", "owner": {"formatted_name": "Ana Lopez"}}, {}) == {"id": "u1", "name": "Ana Lopez"}
    assert read({"owner_id": "u1", "owner": "https://example.invalid/Clients/u1"}, {}) == {"id": "u1", "name": None}
    assert read({"owner_id": None}, {}) is None
    assert IdOf().write({"id": "u1", "name": "x"}, {}) == "u1"
    assert IdOf(numeric=True).write({"id": "7"}, {}) == 7
    assert IdOf.reads_as_is
