"""Which of a workflow's own texts become documents, per index layout."""

from __future__ import annotations

from frontdesk.index.builder import (
    DOC_WORKFLOW,
    LAYOUT_TEXT,
    LAYOUT_TEXT_TITLE,
    LAYOUT_TEXT_TITLE_DESCRIPTION,
    collect_documents,
    layout_of,
    workflow_documents,
)
from frontdesk.schema import LabelledQuery, Workflow

WF = Workflow(
    id="card-arrival",
    title="New card has not arrived",
    description="The customer ordered a card and it has not been delivered yet.",
    steps=["Check the dispatch date"],
)


def test_each_layout_adds_its_texts() -> None:
    whole = "New card has not arrived. The customer ordered a card and it has not been delivered yet. Check the dispatch date"  # noqa: E501
    assert workflow_documents(WF, LAYOUT_TEXT) == [whole]
    assert workflow_documents(WF, LAYOUT_TEXT_TITLE) == [whole, WF.title]
    assert workflow_documents(WF, LAYOUT_TEXT_TITLE_DESCRIPTION) == [
        whole,
        WF.title,
        WF.description,
    ]


def test_a_description_that_repeats_another_text_is_not_added_twice() -> None:
    bare = Workflow(id="a", title="Reset a password", description="reset a  password")
    docs = workflow_documents(bare, LAYOUT_TEXT_TITLE_DESCRIPTION)
    assert docs == ["Reset a password. reset a  password", "Reset a password"]
    only = Workflow(id="b", title="Reset a password", description="The user forgot it.")
    # no steps: the description is neither the whole text nor the title
    assert workflow_documents(only, LAYOUT_TEXT_TITLE_DESCRIPTION)[-1] == "The user forgot it."
    untitled = Workflow(id="c", title="Rotate a key")
    assert workflow_documents(untitled, LAYOUT_TEXT_TITLE_DESCRIPTION) == ["Rotate a key"]


def test_layout_of_and_collected_documents_agree() -> None:
    assert layout_of(False) == LAYOUT_TEXT
    assert layout_of(True, descriptions=False) == LAYOUT_TEXT_TITLE
    assert layout_of(True) == LAYOUT_TEXT_TITLE_DESCRIPTION
    ex = [LabelledQuery(text="The customer ordered a card and it has not been delivered yet.",
                        label="card-arrival")]  # fmt: skip
    texts, owner, kind = collect_documents([WF], ex)
    # the example repeating the description stays an example beside it
    assert texts.count(WF.description) == 2
    assert kind.tolist() == [DOC_WORKFLOW] * 3 + [2] and owner.tolist() == [0] * 4
    texts, _, _ = collect_documents([WF], ex, descriptions=False)
    assert texts.count(WF.description) == 1
