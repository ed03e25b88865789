"""Tasks: a checked task card bound to its analytic model, and the registry of tasks by name."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.distributions import Distribution

from sbibench.checks import MAX_SEED, is_seed, is_whole
from sbibench.failures import FIELDS as FAILURE_FIELDS
from sbibench.failures import Failures
from sbibench.models import FAMILIES, Model, get_family
from sbibench.models.common import MAX_MAGNITUDE, check_theta, sample
from sbibench.models.iid_sets import valid_sets
from sbibench.paths import data_dir
from sbibench.reference.store import Reference, load_reference
from sbibench.registry import load, with_entry_points

__all__ = ["Task", "CardError", "NUM_REFERENCE_SAMPLES", "get_task", "list_tasks", "load_card"]

NUM_REFERENCE_SAMPLES = 10_000  # exact posterior draws per observation, unless a card says

# The keys of a card, each with what it means; every one is required and no other is allowed.
CARD_KEYS = {
    "name": "the task's name; equals the file's stem",
    "family": "the model family",
    "description": "one line for tables",
    "num_observations": "how many observations the reference posteriors hold",
    "seed": "seed of the generator that draws the observations",
    "prior": "table of the family's prior numbers",
    "simulator": "table of the family's simulator numbers",
}
# Optional: observations fixed by another benchmark, with their source, instead of drawn.
OPTIONAL_KEYS = {
    "observations": "table: `source`, `true_parameters` (K lists of D) and `data` (K lists of M)",
    "misspecified": "table: `assumes` (the well-specified task whose model this one shares) and "
    "`process` (how the observations were drawn instead)",
    "failures": "table: `fraction` of simulations that fail, in [0, 1), and `mode`, nan or raise",
    "num_reference_samples": f"exact posterior draws stored per observation (default "
    f"{NUM_REFERENCE_SAMPLES:,}; fewer keeps a high-dimensional task's files small)",
}


class CardError(ValueError):
    """A task card is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Task:
    """An inference task with an exact posterior. Observations are numbered 1..K.

    Shapes: ``D`` = ``dim_parameters``, ``M`` = ``dim_data``; every tensor is float64.

    Example:
        >>> task = get_task("normal_mean")
        >>> theta = task.sample_prior(5, generator=torch.Generator().manual_seed(0))
        >>> task.simulate(theta).shape
        torch.Size([5, 10])
    """

    name: str
    family: str
    description: str
    num_observations: int
    seed: int
    card_path: Path
    card_sha256: str
    model: Model
    # (true parameters (K, D), observations (K, M), source) when the card fixes them
    fixed_observations: tuple[Tensor, Tensor, str] | None = dataclasses.field(
        default=None, compare=False
    )
    # The well-specified task whose model (family, prior, simulator) this one assumes, where
    # the card's observations come from another process: scored against the assumed model's
    # exact posterior, and kept apart from well-specified leaderboards.
    assumes: str | None = None
    misspecification: str | None = None
    # the card's [failures]: a stated fraction of simulations fail (sbibench.failures)
    failures: Failures | None = None
    num_reference_samples: int = NUM_REFERENCE_SAMPLES

    @property
    def prior(self) -> Distribution:
        """The prior, event shape (D,)."""
        return self.model.prior

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return self.model.parameter_names

    @property
    def dim_parameters(self) -> int:
        return len(self.model.parameter_names)

    @property
    def dim_data(self) -> int:
        return self.model.data_dim

    @property
    def padded_sets(self) -> bool:
        """Whether each data row is a set of i.i.d. scalars of varying size, NaN-padded to
        ``dim_data`` (`sbibench.models.iid_sets`): the model's ``padded_sets``, False for a
        model that does not say."""
        return bool(getattr(self.model, "padded_sets", False))

    def valid(self, x: Tensor) -> Tensor:
        """(N, M) simulations -> (N,) bool: which rows are valid data of this task.

        The one rule every budget, calibration and observation check applies: every entry
        finite, or for padded sets (`padded_sets`) at least one entry, none infinite, and NaN
        only as trailing padding (`sbibench.models.iid_sets.valid_sets`). A failed simulation
        (a NaN row) is invalid either way.
        """
        if self.padded_sets:
            return valid_sets(x)
        return torch.isfinite(x).all(-1)

    @property
    def discrete_data(self) -> bool:
        """Whether the data are whole numbers (counts): the model's ``discrete_data``, False
        for a model that does not say."""
        return bool(getattr(self.model, "discrete_data", False))

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """(n, D) draws from the prior; a pure function of ``generator`` when given."""
        return sample(self.prior, n, generator)

    def simulate(self, theta: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """(N, D) parameters -> (N, M) data; deterministic given ``generator``.

        Where the card has ``[failures]``, that fraction of the rows fail, drawn from
        ``generator`` independently of theta: NaN rows (mode "nan"), or a
        `sbibench.failures.SimulationError` holding the batch (mode "raise"), which budgets
        turn back into NaN rows to drop and count.
        """
        x = self.model.simulate(theta, generator=generator)
        return x if self.failures is None else self.failures.apply(x, generator)

    def log_likelihood(self, theta: Tensor, x: Tensor) -> Tensor:
        """Exact log p(x | theta): (N, D) and (M,) or (N, M) -> (N,)."""
        return self.model.log_likelihood(theta, x)

    def log_joint(self, theta: Tensor, x: Tensor) -> Tensor:
        """Unnormalised log posterior log p(x | theta) + log p(theta): (N, D) -> (N,)."""
        theta = check_theta(theta, self.dim_parameters)
        return self.model.log_likelihood(theta, x) + self.prior.log_prob(theta)

    def summary(self, x: Tensor) -> Tensor:
        """(N, M) data -> (N, S) summary statistics (the data where the family has none)."""
        return self.model.summary(x)

    def posterior(self, x: Tensor) -> Distribution:
        """Exact posterior given (M,) or (K, M) data: batch shape () or (K,), event (D,)."""
        return self.model.posterior(x)

    def _reference(self) -> Reference:
        return load_reference(self)

    def _check_number(self, k: int) -> int:
        if not is_whole(k, 1) or k > self.num_observations:
            raise ValueError(
                f"observation number must be in 1..{self.num_observations} for task "
                f"{self.name!r}, got {k!r}"
            )
        return k

    def observation(self, k: int) -> Tensor:
        """The k-th observation (1-based), shape (M,), from the reference files."""
        return self._reference().observations[self._check_number(k) - 1]

    def true_parameters(self, k: int) -> Tensor:
        """The parameters that generated observation k, shape (D,)."""
        return self._reference().true_parameters[self._check_number(k) - 1]

    def reference_samples(self, k: int) -> Tensor:
        """Exact posterior samples for observation k, shape (num_reference_samples, D)."""
        return self._reference().samples[self._check_number(k) - 1]

    def reference_moments(self, k: int) -> tuple[Tensor, Tensor]:
        """Exact posterior mean (D,) and covariance (D, D) for observation k."""
        reference = self._reference()
        index = self._check_number(k) - 1
        return reference.means[index], reference.covariances[index]


def _check_table(
    path: Path, table: str, value: Any, fields: dict, whose: str = "the family's "
) -> dict:
    if not isinstance(value, dict):
        raise CardError(f"{path}: [{table}] must be a table, got {value!r}")
    for key in value:
        if key not in fields:
            raise CardError(
                f"{path}: unknown field {table}.{key}; {whose}{table} fields are "
                f"{', '.join(sorted(fields))}"
            )
    checked = {}
    for key, field in fields.items():
        if key not in value:
            raise CardError(f"{path}: missing field {table}.{key} ({field.meaning})")
        try:
            checked[key] = field.check(value[key])
        except ValueError as error:
            raise CardError(f"{path}: field {table}.{key} {error}") from None
    return checked


def load_card(path: str | Path) -> Task:
    """Read, check and build the task that the card at ``path`` defines.

    Raises:
        CardError: the card is not TOML, or has an unknown, missing or out-of-range field;
            the message names the file and the field.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        card = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise CardError(f"{path}: not a valid TOML card: {error}") from None
    for key in card:
        if key not in CARD_KEYS and key not in OPTIONAL_KEYS:
            allowed = ", ".join([*CARD_KEYS, *OPTIONAL_KEYS])
            raise CardError(f"{path}: unknown field {key!r}; allowed: {allowed}")
    for key, meaning in CARD_KEYS.items():
        if key not in card:
            raise CardError(f"{path}: missing field {key!r} ({meaning})")
    for key in ("name", "family", "description"):
        if not isinstance(card[key], str) or not card[key]:
            raise CardError(f"{path}: field {key!r} must be a non-empty string")
    if card["name"] != path.stem:
        raise CardError(f"{path}: field 'name' is {card['name']!r} but the file is {path.name}")
    if card["family"] not in FAMILIES:
        raise CardError(
            f"{path}: field 'family' is {card['family']!r}; known: {', '.join(sorted(FAMILIES))}"
        )
    for key, minimum in (("num_observations", 1), ("seed", 0), ("num_reference_samples", 100)):
        if key not in card:  # num_reference_samples, which is optional
            continue
        value = card[key]
        if not is_whole(value, minimum):
            raise CardError(
                f"{path}: field {key!r} must be a whole number >= {minimum}, got {value!r}"
            )
    if not is_seed(card["seed"]):  # the reference build's torch.Generator().manual_seed
        raise CardError(
            f"{path}: field 'seed' must be a whole number in 0..2**63-1 ({MAX_SEED}), "
            f"got {card['seed']!r}"
        )
    family = get_family(card["family"])
    prior = _check_table(path, "prior", card["prior"], family.prior)
    simulator = _check_table(path, "simulator", card["simulator"], family.simulator)
    try:
        model = family.build(prior, simulator)
    except ValueError as error:  # a constraint between fields, e.g. two lists' lengths
        raise CardError(f"{path}: {error}") from None
    sizes = getattr(model, "observation_sizes", None)
    if sizes is not None and len(sizes) != card["num_observations"]:
        raise CardError(
            f"{path}: field simulator.observation_sizes has {len(sizes)} sizes, but "
            f"num_observations is {card['num_observations']}: one size per observation"
        )
    fixed = None
    if "observations" in card:
        fixed = _check_observations(path, card["observations"], card["num_observations"], model)
    assumes = process = None
    if "misspecified" in card:
        if fixed is None:
            raise CardError(f"{path}: [misspecified] needs the [observations] it describes")
        assumes, process = _check_misspecified(path, card)
    failures = None
    if "failures" in card:
        table = _check_table(path, "failures", card["failures"], FAILURE_FIELDS, "the ")
        failures = Failures(**table)
    return Task(
        name=card["name"],
        family=card["family"],
        description=card["description"],
        num_observations=card["num_observations"],
        seed=card["seed"],
        card_path=path,
        card_sha256=hashlib.sha256(raw).hexdigest(),
        model=model,
        fixed_observations=fixed,
        assumes=assumes,
        misspecification=process,
        failures=failures,
        num_reference_samples=card.get("num_reference_samples", NUM_REFERENCE_SAMPLES),
    )


def _check_misspecified(path: Path, card: dict) -> tuple[str, str]:
    """(assumes, process) of the ``[misspecified]`` table; the assumed task must share this
    card's family, prior and simulator, so its model is exactly the one scored against."""
    table = card["misspecified"]
    if not isinstance(table, dict) or set(table) != {"assumes", "process"}:
        raise CardError(f"{path}: [misspecified] must hold exactly assumes, process")
    for key in ("assumes", "process"):
        if not isinstance(table[key], str) or not table[key]:
            raise CardError(f"{path}: field misspecified.{key} must be a non-empty string")
    cards = _registry()
    if table["assumes"] not in cards or table["assumes"] == card["name"]:
        raise CardError(
            f"{path}: field misspecified.assumes is {table['assumes']!r}, not another known task"
        )
    assumed = tomllib.loads(cards[table["assumes"]].read_text())
    for key in ("family", "prior", "simulator"):
        if assumed.get(key) != card[key]:
            raise CardError(
                f"{path}: field {key!r} differs from the assumed task "
                f"{table['assumes']!r} ({cards[table['assumes']]}); a misspecified variant "
                "shares its model"
            )
    return table["assumes"], table["process"]


def _check_observations(path: Path, table: Any, rows: int, model: Model) -> tuple:
    """The ``[observations]`` table as (true parameters (K, D), data (K, M), source)."""
    fields = {"source": 0, "true_parameters": len(model.parameter_names), "data": model.data_dim}
    if not isinstance(table, dict) or set(table) != set(fields):
        raise CardError(f"{path}: [observations] must hold exactly {', '.join(fields)}")
    if not isinstance(table["source"], str) or not table["source"]:
        raise CardError(f"{path}: field observations.source must be a non-empty string")
    arrays = []
    for key in ("true_parameters", "data"):
        try:
            array = torch.tensor(table[key], dtype=torch.float64)
        except (TypeError, ValueError):
            array = torch.empty(0)
        if array.shape != (rows, fields[key]) or not torch.isfinite(array).all():
            raise CardError(
                f"{path}: field observations.{key} must be {rows} lists of {fields[key]} "
                "finite numbers"
            )
        if (array.abs() > MAX_MAGNITUDE).any():  # the bound of every real on a card
            raise CardError(
                f"{path}: field observations.{key} holds {array.abs().max().item():g}; its "
                f"numbers must be at most {MAX_MAGNITUDE:.3g} in magnitude (their squares must "
                "stay finite in float32, which methods train in)"
            )
        arrays.append(array)
    return arrays[0], arrays[1], table["source"]


def _card_folders() -> list[Path]:
    """The packaged ``tasks/`` folder, then folders other packages register under the
    ``sbibench.tasks`` entry-point group (each entry point loads a path to a folder of cards)."""
    folders = [data_dir() / "tasks"]
    folders += [Path(load(path, "task folder")) for path in with_entry_points({}, "tasks").values()]
    return folders


@functools.cache
def _registry() -> dict[str, Path]:
    cards: dict[str, Path] = {}
    for folder in _card_folders():
        for path in sorted(folder.glob("*.toml")):
            if path.stem in cards:
                raise CardError(
                    f"{path}: task {path.stem!r} is already defined by {cards[path.stem]}"
                )
            cards[path.stem] = path
    return cards


def list_tasks() -> list[str]:
    """Names of every known task, sorted."""
    return sorted(_registry())


@functools.cache
def get_task(name: str) -> Task:
    """The task called ``name``.

    Raises:
        ValueError: no such task; the message lists the known ones.
    """
    cards = _registry()
    if name not in cards:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(cards))}")
    return load_card(cards[name])
