"""A study folder: ``study.json`` (config), ``stimuli.json`` (every shown file with its sha256),
``items.json`` (what a rater judges), ``images/`` and ``answers.sqlite``.

Everything a rater sees is a file under ``images/`` named by an opaque id, so method names
never reach the browser. The folder can be copied to another machine as is.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from carbench.core.errors import BenchError
from carbench.core.options import Option, resolve

MODES = ("rating", "pairwise")
#: what ``bench study create`` declares about a study, checked when a config is made
STUDY_OPTIONS = (
    Option(
        "mode",
        "choice",
        "rating",
        choices=MODES,
        help="rating: one output scored on the scale; pairwise: two outputs of one image",
    ),
    Option("scale_min", "int", 1, min=0, max=100, help="lowest rating (rating studies)"),
    Option("scale_max", "int", 10, min=1, max=100, help="highest rating (rating studies)"),
    Option("repeats", "int", 2, min=0, max=1000, help="items shown again per rater"),
    Option(
        "adaptive",
        "int",
        0,
        min=0,
        max=100000,
        help="pairwise: comparisons per rater, each chosen when asked for by expected "
        "information gain over everyone's answers so far (0: every pair, in a seeded order)",
    ),
)
#: what ``bench study report`` declares beyond the table's format (checked by ``resolve``)
REPORT_OPTIONS = (
    Option(
        "screening",
        "choice",
        "corr",
        choices=("corr", "bt500", "either"),
        help="which flag --exclude-outliers acts on: corr (correlation with the other raters "
        "below --min-corr), bt500 (ITU-R BT.500-14 Annex 1 2.3.1 beta-2 screening), either",
    ),
    Option(
        "interval",
        "choice",
        "bootstrap",
        choices=("bootstrap", "bt500"),
        help="the MOS cells' interval: bootstrap (raters and images, --resamples) or bt500 "
        "(ITU-R BT.500: MOS +- 1.96 S/sqrt(N) over the condition's ratings; rating studies)",
    ),
    Option(
        "agreement_resamples",
        "int",
        200,
        min=10,
        max=100000,
        help="bootstrap resamples of the metric-human agreement (each refits the logistic)",
    ),
    Option(
        "mos_ci_width",
        "float",
        1.0,
        min=0.001,
        max=100.0,
        help="the widest BT.500 95% MOS interval wanted; wider ones warn 'too few raters'",
    ),
)
CONFIG, STIMULI, ITEMS, DB = "study.json", "stimuli.json", "items.json", "answers.sqlite"


@dataclass(frozen=True)
class StudyConfig:
    """What the study asks and how its per-rater order is drawn."""

    name: str
    mode: str  # rating | pairwise
    seed: int
    admin_token: str
    scale_min: int = 1
    scale_max: int = 10
    repeats: int = 2  # items shown twice per rater (consistency)
    question: str = ""
    db_url: str = ""  # postgresql://... ; empty: answers.sqlite in the folder
    adaptive: int = 0  # pairwise: comparisons per rater chosen live (carbench.study.adaptive)
    workspace: str = ""  # the workspace the outputs came from (its store has their metrics)
    preset: str = ""  # the published design it follows (``bench study create --preset``)

    def __post_init__(self) -> None:
        given = {o.name: getattr(self, o.name) for o in STUDY_OPTIONS}
        resolve("bench study create", STUDY_OPTIONS, given)
        if self.scale_min >= self.scale_max:
            raise BenchError(f"rating scale {self.scale_min}..{self.scale_max} is empty")
        if self.adaptive and self.mode != "pairwise":
            raise BenchError("adaptive pair selection needs --mode pairwise")


@dataclass(frozen=True)
class Stimulus:
    """One shown image: where it came from (hidden from raters) and its file."""

    id: str
    dataset: str
    protocol: str
    degradation: str
    method: str  # method id, or "gt" / "jpeg" anchors
    image: str
    file: str  # name under images/
    sha256: str
    crop: tuple[int, int, int, int] | None = None  # x, y, w, h in the source image


@dataclass(frozen=True)
class Item:
    """One judgement: a stimulus to rate, or two stimuli of the same image to compare."""

    id: str
    stimuli: tuple[str, ...]


@dataclass
class Study:
    root: Path
    config: StudyConfig
    stimuli: dict[str, Stimulus] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def db_path(self) -> Path:
        return self.root / DB

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / CONFIG).write_text(json.dumps(asdict(self.config), indent=1))
        (self.root / STIMULI).write_text(
            json.dumps([asdict(s) for s in self.stimuli.values()], indent=1)
        )
        (self.root / ITEMS).write_text(json.dumps([asdict(i) for i in self.items.values()]))

    @classmethod
    def load(cls, root: Path, verify: bool = False) -> Study:
        """Read a study folder; ``verify`` re-hashes every image against its recorded sha256."""
        root = Path(root)
        try:
            config = StudyConfig(**json.loads((root / CONFIG).read_text()))
            stimuli = [
                Stimulus(**{**s, "crop": _crop(s["crop"])})
                for s in json.loads((root / STIMULI).read_text())
            ]
            items = [
                Item(i["id"], tuple(i["stimuli"])) for i in json.loads((root / ITEMS).read_text())
            ]
        except FileNotFoundError as e:
            raise BenchError(
                f"{root}: not a study folder ({Path(e.filename).name} missing); "
                "create one with `bench study create`"
            ) from None
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise BenchError(f"{root}: damaged study files ({e})") from None
        study = cls(root, config, {s.id: s for s in stimuli}, {i.id: i for i in items})
        if verify:
            for s in stimuli:
                path = study.images_dir / s.file
                if not path.is_file() or file_sha256(path) != s.sha256:
                    raise BenchError(f"{path}: missing or changed since the study was created")
        return study

    def plan(self, rater_seed: int) -> list[tuple[str, bool]]:
        """A rater's (item id, is_repeat) sequence: a seeded shuffle, then ``repeats`` items
        drawn again at the end; pairwise items also get a seeded left/right swap (see
        ``swapped``)."""
        rng = random.Random(rater_seed)
        order = sorted(self.items)
        rng.shuffle(order)
        k = min(self.config.repeats, len(order))
        again = rng.sample(order[: max(k, len(order) // 2)], k) if k else []
        return [(i, False) for i in order] + [(i, True) for i in again]


def _crop(value) -> tuple[int, int, int, int] | None:
    return tuple(value) if value else None


def swapped(rater_seed: int, pos: int) -> bool:
    """Whether a pairwise item at ``pos`` shows its second stimulus on the left."""
    return random.Random(f"{rater_seed}:{pos}").random() < 0.5


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
