"""Level 2's population: the parents a session may mutate (the best-credited mechanisms of earlier runs first, then
the reference library), the one stated change each mutant is asked for, and whether a mutant changed anything. Pure:
the store is read elsewhere."""

from __future__ import annotations

import ast

from pydantic import BaseModel, Field

from mechanisms.library import model_entries
from search.research import HOLE

MAX_CREDITED = 3  # earlier runs' mechanisms in a population: the best few, so the prompt stays one parent long
MAX_LINEAGE_PARENTS = 16  # infra.store.MAX_PARENTS: a version's metadata names at most this many parents

# One stated change per mutant, in turn: a small model edits one thing in code it is shown better than it invents a
# whole class (issue 19). Each text completes "Change it in exactly one way: ...".
CHANGES: tuple[tuple[str, str], ...] = (
    ("rule", "replace the rule that decides what one of its hooks returns with a different rule (choose by another "
             "score, move in another direction, prefer other parameters); keep its other hooks as they are"),
    ("state", "add one new state variable to self.state, update it in observe(ctx, result), and use it in one "
              "decision of another hook"),
    ("threshold", "add or change one threshold (a number compared with something the trace shows, e.g. experiments "
                  "since the last improvement, how often a parameter was tried, a margin on the value) that decides "
                  "when the mechanism acts"),
)


class Parent(BaseModel):
    """A mechanism a mutant may start from: a library one, or a version stored by an earlier run with its credit."""

    label: str = Field(description="`library:<name>` or `<name>@<VersionId>`.")
    name: str
    source: str
    version_id: str | None = Field(None, description="The store's VersionId; None for the library.")
    credited_delta: float | None = Field(None, description="Δ its real trainings are credited with (negative: "
                                         "it helped); None for the library.")


AS_IS = "as is"  # the kind of a parent simulated unchanged, beside its mutants (no LLM call)


class Mutation(BaseModel):
    """What one mutant sample is asked for: a parent, one change of a stated kind, and the methods to rewrite."""

    parent: Parent
    kind: str
    change: str
    methods: list[str] = Field(default_factory=list, description="The parent's methods the mutant rewrites (its "
                               "answer is those methods only: mechanisms/splice.py).")

    @property
    def parent_itself(self) -> bool:
        """The parent as it is (no LLM answer): it keeps its own name, and is neither autofixed nor repaired."""
        return self.kind == AS_IS


def as_is(parent: Parent) -> Mutation:
    """A parent as its own candidate: checked and simulated like its mutants, so that a parent that beats the current
    search is activated under its own name rather than through a mutant that changed nothing that decides."""
    return Mutation(parent=parent, kind=AS_IS, change="none: the parent itself, simulated as it is", methods=[])


# Which hook a change rewrites first: the one that decides most (a proposal reaches training; a screen chooses).
DECIDING_HOOKS = ("propose", "screen", "accept", "plan")


def methods_to_rewrite(parent_source: str, kind: str, hooks: list[str]) -> list[str]:
    """The parent's methods a change of `kind` rewrites: its deciding hook (a specified one first), and for a new
    state variable also __init__ and observe, which set and update it. Named, because asked for "the methods you
    change" without names the local model answered with its parent unchanged (session 6 dev check)."""
    try:
        defined = {n.name for n in ast.walk(ast.parse(parent_source)) if isinstance(n, ast.FunctionDef)}
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    ranked = [h for h in hooks if h in DECIDING_HOOKS] + [h for h in DECIDING_HOOKS if h not in hooks]
    deciding = next((h for h in ranked if h in defined), None)
    chosen = [deciding] if deciding else []
    if kind == "state":
        chosen = ["__init__", "observe", *chosen]
    return list(dict.fromkeys(chosen))


def library_parents() -> list[Parent]:
    """The library mechanisms a mutant may start from: those that keep acting (mechanisms/library ONE_SHOT)."""
    return [Parent(label=f"library:{entry.name}", name=entry.name, source=entry.source) for entry in model_entries()]


def build_population(credited: list[Parent], limit: int = MAX_CREDITED) -> list[Parent]:
    """Earlier runs' credited mechanisms (best credit first, only those that helped, at most `limit`, one per source),
    then the library. With no earlier runs the population is the library."""
    helped = sorted((p for p in credited if p.credited_delta is not None and p.credited_delta < 0),
                    key=lambda p: p.credited_delta or 0.0)
    chosen: list[Parent] = []
    for parent in helped:
        if len(chosen) < limit and all(parent.source != c.source for c in chosen):
            chosen.append(parent)
    return [*chosen, *library_parents()]


def with_holes(source: str, methods: list[str]) -> str:
    """The parent as a mutant's prompt shows it: the methods to rewrite keep their `def` line and docstring, and
    their body is a hole (__init__ stays whole: it shows the state the other methods use). Shown whole, the local
    model copied the parent back unchanged in 4 of 6 mutants (benchmarks/results/mutant-probe/named.json)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return source
    lines = source.splitlines()
    holes = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in methods and n.name != "__init__"]
    for node in sorted(holes, key=lambda n: n.lineno, reverse=True):
        body = node.body[1:] if (len(node.body) > 1 and isinstance(node.body[0], ast.Expr)
                                 and isinstance(node.body[0].value, ast.Constant)) else node.body
        first, last = body[0].lineno, node.end_lineno or node.lineno
        lines[first - 1:last] = [" " * body[0].col_offset + HOLE]
    return "\n".join(lines) + "\n"


def plan_mutations(population: list[Parent], count: int, hooks: list[str]) -> list[Mutation]:
    """`count` mutations: parents in population order, except that library parents are ranked by how many of the
    specified hooks they define (the wanted structure); changes in the order of CHANGES, each in turn."""
    if count <= 0 or not population:
        return []

    def rank(indexed: tuple[int, Parent]) -> tuple[int, int, int]:
        index, parent = indexed
        if parent.version_id is not None:
            return (0, 0, index)
        return (1, -sum(f"def {hook}(self" in parent.source for hook in hooks), index)

    ordered = [parent for _, parent in sorted(enumerate(population), key=rank)]
    mutations = []
    for k in range(count):
        parent, (kind, change) = ordered[k % len(ordered)], CHANGES[k % len(CHANGES)]
        mutations.append(Mutation(parent=parent, kind=kind, change=change,
                                  methods=methods_to_rewrite(parent.source, kind, hooks)))
    return mutations


def mutant_count(samples: int, mutants: int, population: list[Parent]) -> int:
    """The rule: of a session's first-round samples, `mutants` are mutants, but at most half of them (at least one
    sample is always a fresh invention), and none without a population."""
    return min(mutants, samples // 2) if population else 0


def lineage_parents(context: list[str], parent: Parent | None) -> list[str]:
    """The store VersionIds a version names as parents: a mutant's stored parent first, then the mechanisms active
    when it was made (a library parent has no VersionId; the validation document and MLflow tags name it)."""
    ordered = [parent.version_id] if parent is not None and parent.version_id else []
    return list(dict.fromkeys([*ordered, *context]))[:MAX_LINEAGE_PARENTS]


class _Shape(ast.NodeTransformer):
    """What a mutant may rename without changing anything: class names, the declared `name`, docstrings."""

    def visit_ClassDef(self, node: ast.ClassDef) -> ast.AST:
        node.name = "_"
        for item in node.body:
            if (isinstance(item, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "name" for t in item.targets)
                    and isinstance(item.value, ast.Constant)):
                item.value = ast.Constant(value="_")
        return self._undocumented(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        return self._undocumented(node)

    def _undocumented(self, node: ast.ClassDef | ast.FunctionDef) -> ast.AST:
        first = node.body[0] if node.body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            node.body = node.body[1:] or [ast.Pass()]
        self.generic_visit(node)
        return node


def _self_attribute(node: ast.AST) -> str | None:
    """`x` for `self.x`."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
        return node.attr
    return None


def dead_state(tree: ast.AST) -> set[str]:
    """The attributes a mechanism sets (`self.x = ...`) but never reads anywhere (`self.x += 1` reads it)."""
    written: set[str] = set()
    read: set[str] = set()
    for node in ast.walk(tree):
        name = _self_attribute(node)
        if name is not None:
            (written if isinstance(getattr(node, "ctx", None), ast.Store) else read).add(name)
        elif isinstance(node, ast.AugAssign) and (target := _self_attribute(node.target)) is not None:
            read.add(target)
    return written - read


class _WithoutDeadState(ast.NodeTransformer):
    """Drops the assignments to state that nothing reads and the imports that nothing uses: such a change alters no
    decision."""

    def __init__(self, dead: set[str], used: set[str]) -> None:
        self.dead, self.used = dead, used

    def visit_Import(self, node: ast.Import) -> ast.AST | None:
        return node if any((a.asname or a.name.split(".")[0]) in self.used for a in node.names) else None

    def visit_ImportFrom(self, node: ast.ImportFrom) -> ast.AST | None:
        return node if any((a.asname or a.name) in self.used for a in node.names) else None

    def visit_Assign(self, node: ast.Assign) -> ast.AST | None:
        if node.targets and all(_self_attribute(t) in self.dead for t in node.targets):
            return None
        return node

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.AST | None:
        return None if _self_attribute(node.target) in self.dead else node


def _behaviour(text: str) -> tuple[str, set[str]]:
    tree = ast.parse(text)
    dead = dead_state(tree)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    shaped = _Shape().visit(_WithoutDeadState(dead, used).visit(tree))
    if shaped.body and isinstance(shaped.body[0], ast.Expr) and isinstance(shaped.body[0].value, ast.Constant):
        shaped.body = shaped.body[1:]  # the module docstring
    return ast.dump(shaped), dead


def unchanged(code: str, parent_source: str) -> bool:
    """Whether a mutant is its parent with nothing changed but names, docstrings and state that nothing reads (a
    threshold's new number is a change, unlike in novelty's shapes). The dead state is the local model's way of
    "adding a state variable": an activated level2-yield-5 mutant of ucb_bandit was its parent plus
    `self.last_state = None`."""
    try:
        (mutant, _), (parent, _) = _behaviour(code), _behaviour(parent_source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # untrusted code: validation says what is wrong
        return False
    return mutant == parent
