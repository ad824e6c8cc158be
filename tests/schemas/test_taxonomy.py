import pytest

from schemas import (
    Category,
    Taxonomy,
    all_category_ids,
    category_label,
    category_parent,
    is_category,
    load_taxonomy,
)


def test_every_category_has_a_japanese_label():
    for category_id in all_category_ids():
        label = category_label(category_id)
        assert label.strip() and not label.isascii(), category_id


def test_two_levels_of_about_fifteen_top_level_categories():
    taxonomy = load_taxonomy()
    assert 12 <= len(taxonomy.roots) <= 20
    for root in taxonomy.roots:
        children = taxonomy.children(root.id)
        assert 2 <= len(children) <= 5, root.id
        assert all(child.id.startswith(root.id + ".") for child in children)
    assert len(taxonomy) == len(all_category_ids()) == len(set(all_category_ids()))


def test_lookups():
    assert category_label("safety") == "安全・リコール"
    assert category_label("safety.recall") == "リコール・回収"
    assert category_label("food.allergy") == "アレルギー"
    assert category_parent("safety.recall") == "safety"
    assert category_parent("safety") is None
    assert is_category("points") and is_category("welfare.care")
    assert not is_category("safety.unknown") and not is_category("Safety") and not is_category("")


def test_unknown_ids_raise_key_error():
    with pytest.raises(KeyError):
        category_label("nope")
    with pytest.raises(KeyError):
        category_parent("nope")
    with pytest.raises(KeyError):
        load_taxonomy().children("nope")


def test_ids_are_listed_parent_first():
    ids = all_category_ids()
    for category_id in ids:
        parent = category_parent(category_id)
        if parent is not None:
            assert ids.index(parent) < ids.index(category_id)


def test_load_is_cached():
    assert load_taxonomy() is load_taxonomy()


@pytest.mark.parametrize(
    ("categories", "problem"),
    [
        ([{"id": "Safety", "label": "安全"}], "lowercase ASCII"),
        ([{"id": "a.b.c", "label": "深すぎ"}], "lowercase ASCII"),
        ([{"id": "a", "label": "一"}, {"id": "a", "label": "二"}], "duplicate"),
        ([{"id": "a", "label": " "}], "no label"),
        ([{"id": "a", "label": "一", "children": [{"id": "b.c", "label": "子"}]}], "listed under"),
    ],
)
def test_malformed_taxonomies_are_refused(categories, problem):
    with pytest.raises(ValueError, match=problem):
        Taxonomy.from_dict({"categories": categories})


def test_child_before_parent_is_refused():
    with pytest.raises(ValueError, match="before its parent"):
        Taxonomy([Category("a.b", "子", "a"), Category("a", "親")])
