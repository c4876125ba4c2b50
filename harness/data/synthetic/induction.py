"""Stories with two-token random names (Gloeckle et al. 2024, Sec. 4.1), from a template grammar.

A story introduces 2-4 characters ("... a fox named Ka lo .") and then mentions them again in
template sentences. A random name is two words, a capitalised first syllable and a
lowercase second syllable, each one token under the `vocabulary` tokenizer; first syllables
are distinct within a story, so at a repeated mention the first token fixes the second, but
only through the earlier mention: predicting it is a pure induction task (the paper's
metric: accuracy on the second token of names already mentioned). Syllables never occur as
story words. Training stories give each character a random name with probability
`train_random_names`, else a one-token name from a fixed pool (the paper trained on ordinary
stories, i.e. 0); test stories give every character a random name.

Test rows carry the story text and, for every repeated mention, the word index of the
name's second token (words = tokens, checked at evaluation) and how many distinct names the
story had mentioned before it: 1/that is what copying a random earlier second syllable,
without matching the first, would score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from harness.data.synthetic.config import InductionSource
from harness.data.synthetic.draw import Draw

GENERATOR_VERSION = 1

KINDS = ["girl", "boy", "cat", "dog", "bird", "rabbit", "bear", "fox", "frog", "duck"]
OBJECTS = ["ball", "kite", "box", "hat", "cake", "book", "toy", "flower", "apple", "stick", "boat", "drum"]
PLACES = ["park", "garden", "forest", "house", "river", "school", "shop", "hill", "beach", "farm"]
ADJECTIVES = ["big", "small", "red", "blue", "green", "shiny", "soft", "old", "new", "pretty", "funny", "little"]
FEELINGS = ["happy", "sad", "tired", "excited", "scared", "proud", "hungry", "sleepy"]
POOL_NAMES = ["Lily", "Tom", "Ben", "Mia", "Sam", "Anna", "Max", "Lucy", "Tim", "Sue", "Jack", "Zoe", "Leo", "Emma",
              "Finn", "Rosa"]
SLOTS = {"{obj}": OBJECTS, "{place}": PLACES, "{adj}": ADJECTIVES, "{feel}": FEELINGS, "{kind}": KINDS}
# {A} and {B} are two different characters; templates with {B} need two or more.
BODY = [
    "{A} liked to play with the {adj} {obj} .",
    "one day {A} and {B} went to the {place} .",
    "{A} saw a {adj} {obj} near the {place} .",
    '{B} said : " {A} , look at the {obj} ! "',
    "{A} was very {feel} .",
    "{A} gave the {obj} to {B} .",
    "{B} smiled at {A} .",
    "{A} and {B} played in the {place} all day .",
    "{A} found a {adj} {obj} .",
    '{A} asked {B} : " can we go to the {place} ? "',
    "then {A} felt {feel} .",
    "{A} wanted the {obj} , but {B} had it .",
    "{A} ran to the {place} .",
    "{B} helped {A} find the {obj} .",
]
FIRST_INTRO = "once upon a time there was a {kind} named {N} ."
LATER_INTROS = ["{A} had a friend , a {kind} named {N} .", "one day {A} met a {kind} named {N} ."]
ENDINGS = ["at the end of the day {A} and {B} went home .", "{A} was {feel} , and {B} was {feel} too .",
           "{A} went home ."]
CONSONANTS, VOWELS, FINALS = "bdfghklmnprstvwz", "aeiou", "knx"


def story_words() -> list[str]:
    """Every word the templates can write (names excluded), sorted."""
    words = {w for t in [*BODY, FIRST_INTRO, *LATER_INTROS, *ENDINGS, "the end ."] for w in t.split()}
    words = {w for w in words if not w.startswith("{")}
    for values in SLOTS.values():
        words.update(values)
    return sorted(words)


def syllables(first_parts: int, second_parts: int) -> tuple[list[str], list[str]]:
    """(first syllables 'Ka', second syllables 'lox'), from a fixed inventory in a fixed order."""
    taken = set(story_words()) | set(POOL_NAMES)
    firsts = [c.upper() + v for c in CONSONANTS for v in VOWELS]
    seconds = [c + v + f for c in CONSONANTS for v in VOWELS for f in FINALS if c + v + f not in taken]
    order = Draw(0, "induction/syllables")  # the inventory is part of the version, not of the seed
    return order.sample(firsts, first_parts), order.sample(seconds, second_parts)


@dataclass
class Story:
    words: list[str] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)  # repeated mentions of two-token names
    _seen: list[tuple[str, ...]] = field(default_factory=list)

    def mention(self, name: tuple[str, ...]) -> None:
        if len(name) == 2 and name in self._seen:
            self.targets.append({"position": len(self.words) + 1, "name": " ".join(name),
                                 "mention": sum(t["name"] == " ".join(name) for t in self.targets) + 2,
                                 "candidates": len({n for n in self._seen if len(n) == 2})})
        if name not in self._seen:
            self._seen.append(name)
        self.words.extend(name)

    def add(self, template: str, fill: dict, draw: Draw) -> None:
        for word in template.split():
            if word in fill:
                self.mention(fill[word])
            elif word in SLOTS:
                self.words.append(draw.pick(SLOTS[word]))
            else:
                self.words.append(word)


class InductionGenerator:
    """Training stories and test stories of one `InductionSource`, from its seed."""

    name = "induction"
    version = GENERATOR_VERSION

    def __init__(self, cfg: InductionSource):
        self.cfg = cfg
        self.firsts, self.seconds = syllables(cfg.first_parts, cfg.second_parts)

    def names(self, draw: Draw, count: int, random_names: float) -> list[tuple[str, ...]]:
        firsts = draw.sample(self.firsts, count)  # distinct first tokens within a story
        pool = draw.sample(POOL_NAMES, count)
        return [(first, draw.pick(self.seconds)) if draw.chance(random_names) else (single,)
                for first, single in zip(firsts, pool)]

    def story(self, draw: Draw, random_names: float) -> Story:
        cast = self.names(draw, draw.between(*self.cfg.characters), random_names)
        story = Story()
        story.add(FIRST_INTRO, {"{N}": cast[0]}, draw)
        for name in cast[1:]:
            story.add(draw.pick(LATER_INTROS), {"{N}": name, "{A}": draw.pick(cast[: cast.index(name)])}, draw)
        templates = BODY if len(cast) > 1 else [t for t in BODY if "{B}" not in t]
        endings = ENDINGS if len(cast) > 1 else [t for t in ENDINGS if "{B}" not in t]
        for template in [*(draw.pick(templates) for _ in range(draw.between(*self.cfg.sentences))), draw.pick(endings)]:
            a, b = draw.sample(cast, 2) if len(cast) > 1 else (cast[0], cast[0])
            story.add(template, {"{A}": a, "{B}": b}, draw)
        story.add("the end .", {}, draw)
        return story

    def vocabulary(self) -> list[str]:
        return story_words() + POOL_NAMES + self.firsts + self.seconds

    def train_texts(self) -> Iterator[str]:
        draw = Draw(self.cfg.seed, "induction/train")
        for _ in range(self.cfg.train_documents):
            yield " ".join(self.story(draw, self.cfg.train_random_names).words)

    def test_rows(self) -> list[dict]:
        draw = Draw(self.cfg.seed, "induction/test")
        rows = []
        for index in range(self.cfg.test_documents):
            story = self.story(draw, 1.0)
            rows.append({"task_id": f"story-{index:05d}", "text": " ".join(story.words), "targets": story.targets})
        return rows

    def facts(self) -> dict:
        return {"chance_second_token": 1.0 / self.cfg.second_parts}
