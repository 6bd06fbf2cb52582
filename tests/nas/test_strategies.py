"""Search strategies (convnet.nas.strategies): ask/tell, resume exactness, constraints, errors,
and search quality on a toy space with a structured objective."""
import copy
import itertools
import json

import numpy as np
import pytest

from convnet.nas.strategies import (MAX_MISSES, RandomSearch, RegularizedEvolution, Reinforce,
                                    query_loop)


class ToySpace:
    """Exactly the interface the strategies may use: choices, sample, mutate, validate, name."""

    name = "toy"

    def __init__(self, n_labels=6, n_options=5):
        self.choices = {f"c{i}": [f"o{j}" for j in range(n_options)] for i in range(n_labels)}

    def sample(self, rng):
        return {lab: opts[int(rng.integers(len(opts)))] for lab, opts in self.choices.items()}

    def mutate(self, arch, rng):
        arch = dict(arch)
        labels = list(self.choices)
        lab = labels[int(rng.integers(len(labels)))]
        others = [o for o in self.choices[lab] if o != arch[lab]]
        arch[lab] = others[int(rng.integers(len(others)))]
        return arch

    def validate(self, arch):
        for lab in arch:
            if lab not in self.choices:
                raise ValueError(f"unknown choice {lab!r}; the space has {list(self.choices)}")
        for lab, opts in self.choices.items():
            if lab not in arch:
                raise ValueError(f"missing choice {lab!r}")
            if arch[lab] not in opts:
                raise ValueError(f"choice {lab!r}: {arch[lab]!r} is not one of {opts}")
        return arch


def toy_objective(space, seed=123):
    """Sum of per-choice scores plus an interaction bonus (+1 when c0 and c1 pick the same
    option index); its optimum is unique (checked in the test)."""
    rng = np.random.default_rng(seed)
    w = {lab: rng.normal(size=len(opts)) for lab, opts in space.choices.items()}
    labels = list(space.choices)

    def f(arch):
        idx = [space.choices[lab].index(arch[lab]) for lab in labels]
        return float(sum(w[lab][i] for lab, i in zip(labels, idx)) + 1.0 * (idx[0] == idx[1]))
    return f


SPACE = ToySpace()
OBJ = toy_objective(SPACE)
ALL = sorted(OBJ(dict(zip(SPACE.choices, c))) for c in itertools.product(*SPACE.choices.values()))
OPT = ALL[-1]


def test_toy_objective_has_structure_and_a_unique_optimum():
    assert len(ALL) == 5 ** 6
    assert ALL[-1] - ALL[-2] > 0.1
    assert OPT - np.median(ALL) > 5


def _best_after(make, n=100, seeds=range(10)):
    return [query_loop(make(s), OBJ, n)[1] for s in seeds]


def test_evolution_beats_random_after_100_queries():
    margin = 0.5
    rnd = _best_after(lambda s: RandomSearch(SPACE, seed=s))
    evo = _best_after(lambda s: RegularizedEvolution(SPACE, population_size=20, sample_size=5, seed=s))
    msg = (f"optimum {OPT:.3f}; mean best after 100: random {np.mean(rnd):.3f} "
           f"(within {margin}: {sum(OPT - b <= margin for b in rnd)}/10), evolution "
           f"{np.mean(evo):.3f} (within {margin}: {sum(OPT - b <= margin for b in evo)}/10)")
    print(msg)
    assert np.mean(evo) > np.mean(rnd) + 0.5, msg
    assert sum(OPT - b <= margin for b in evo) > sum(OPT - b <= margin for b in rnd), msg


def test_reinforce_categorical_improves_its_samples():
    early, late, best = [], [], []
    for s in range(5):
        st = Reinforce(SPACE, seed=s)
        best.append(query_loop(st, OBJ, 100)[1])
        scores = [sc for _, sc in st.history]
        early.append(np.mean(scores[:20]))
        late.append(np.mean(scores[-20:]))
    msg = (f"mean sampled score, queries 1-20: {np.mean(early):.3f}, 81-100: {np.mean(late):.3f}; "
           f"mean best after 100: {np.mean(best):.3f} (optimum {OPT:.3f}, median {np.median(ALL):.3f})")
    print(msg)
    assert np.mean(late) > np.mean(early) + 2.0, msg


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_reinforce_rnn_improves_its_samples(cell):
    st = Reinforce(SPACE, controller="rnn", cell=cell, lr=0.02, hidden_size=16, seed=1)
    query_loop(st, OBJ, 60)
    scores = [sc for _, sc in st.history]
    msg = f"{cell}: queries 1-20 mean {np.mean(scores[:20]):.3f}, 41-60 mean {np.mean(scores[-20:]):.3f}"
    assert np.mean(scores[-20:]) > np.mean(scores[:20]) + 1.0, msg


# ---------------------------------------------------------------------------- resume
MAKERS = {
    "random": lambda: RandomSearch(ToySpace(3, 3), seed=7),
    "evolution": lambda: RegularizedEvolution(ToySpace(), population_size=5, sample_size=2, seed=7),
    "reinforce": lambda: Reinforce(ToySpace(), lr=0.2, entropy=0.01, seed=7),
    "reinforce-lstm": lambda: Reinforce(ToySpace(3, 4), controller="rnn", hidden_size=8, seed=7),
    "reinforce-gru": lambda: Reinforce(ToySpace(3, 4), controller="rnn", cell="gru", hidden_size=8, seed=7),
}


def _run(st, n, asks):
    obj = toy_objective(st.space, seed=5)
    for _ in range(n):
        a = st.ask()
        asks.append(a)
        st.tell(a, obj(a))


@pytest.mark.parametrize("kind", list(MAKERS))
@pytest.mark.parametrize("k", [3, 12])
def test_resume_asks_exactly_what_an_uninterrupted_run_asks(kind, k):
    total = 25 if kind.startswith("reinforce-") else 40  # random's 27 archs are exhausted past 27
    full = MAKERS[kind]()
    full_asks = []
    _run(full, total, full_asks)

    first = MAKERS[kind]()
    asks = []
    _run(first, k, asks)
    saved = json.loads(json.dumps(first.state_dict(), allow_nan=False))  # JSON-able, no NaN
    resumed = MAKERS[kind]()
    resumed.load_state_dict(saved)
    _run(resumed, total - k, asks)
    assert asks == full_asks
    assert resumed.state_dict() == full.state_dict()
    assert resumed.history == full.history
    assert resumed.rng.bit_generator.state == full.rng.bit_generator.state


def test_resume_restores_controller_weights_and_adam_state():
    a = MAKERS["reinforce-lstm"]()
    _run(a, 5, [])
    b = MAKERS["reinforce-lstm"]()
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    for (na, pa), (nb, pb) in zip(a.controller.named_parameters(), b.controller.named_parameters()):
        assert na == nb and np.array_equal(pa.numpy(), pb.numpy())
    sa, sb = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert sorted(sa) == sorted(sb) and len(sa) > 0
    for i in sa:
        assert sa[i]["step"] == sb[i]["step"] == 5
        assert np.array_equal(sa[i]["exp_avg"], sb[i]["exp_avg"])
        assert np.array_equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"])
    assert a.baseline == b.baseline


def test_resume_with_a_pending_ask():
    full = RegularizedEvolution(SPACE, population_size=4, sample_size=2, seed=3)
    _run(full, 6, [])
    pending = full.ask()
    part = RegularizedEvolution(SPACE, population_size=4, sample_size=2, seed=3)
    _run(part, 6, [])
    assert part.ask() == pending
    other = RegularizedEvolution(SPACE, population_size=4, sample_size=2, seed=3)
    other.load_state_dict(json.loads(json.dumps(part.state_dict())))
    for st in (full, other):
        st.tell(pending, 1.0)
    assert full.ask() == other.ask()


def test_load_state_dict_refuses_another_strategy_space_or_config():
    st = RegularizedEvolution(SPACE, seed=0)
    _run(st, 3, [])
    with pytest.raises(ValueError, match="strategy 'evolution', not 'random'"):
        RandomSearch(SPACE).load_state_dict(st.state_dict())
    other = ToySpace()
    other.name = "other"
    with pytest.raises(ValueError, match="space 'toy'"):
        RegularizedEvolution(other).load_state_dict(st.state_dict())
    with pytest.raises(ValueError, match="population_size=20"):
        RegularizedEvolution(SPACE, population_size=10).load_state_dict(st.state_dict())
    r = Reinforce(SPACE)
    with pytest.raises(ValueError, match="'categorical' controller"):
        Reinforce(SPACE, controller="rnn", hidden_size=4).load_state_dict(r.state_dict())
    with pytest.raises(ValueError, match="do not match"):
        Reinforce(ToySpace(6, 4)).load_state_dict(
            dict(r.state_dict(), space="toy"))


def test_seeds_decide_the_asks():
    a = [RandomSearch(SPACE, seed=1).ask() for _ in range(2)]
    assert a[0] == a[1]
    assert RandomSearch(SPACE, seed=1).ask() != RandomSearch(SPACE, seed=2).ask()


# ---------------------------------------------------------------------------- random search
def test_random_search_asks_no_repeats_until_the_space_is_exhausted():
    space = ToySpace(2, 3)  # 9 architectures
    st = RandomSearch(space, seed=0)
    warm = {"c0": "o1", "c1": "o2"}
    st.tell(warm, 0.0)
    asks = [st.ask() for _ in range(8)]
    keys = {json.dumps(a, sort_keys=True) for a in asks + [warm]}
    assert len(keys) == 9
    st.ask()  # every architecture seen: repeats are allowed now, no error


class StuckSpace(ToySpace):
    """A space whose sample() always gives the same architecture."""

    def sample(self, rng):
        return {lab: opts[0] for lab, opts in self.choices.items()}


def test_random_search_finds_unseen_architectures_by_index_when_sampling_repeats():
    space = StuckSpace(2, 3)
    st = RandomSearch(space, seed=0)
    asks = [st.ask() for _ in range(9)]
    assert len({json.dumps(a, sort_keys=True) for a in asks}) == 9
    without = RandomSearch(space, seed=0, dedupe=False)
    assert len({json.dumps(without.ask(), sort_keys=True) for _ in range(9)}) == 1


# ---------------------------------------------------------------------------- evolution
def test_evolution_starts_random_then_mutates_the_tournament_winner():
    space = ToySpace()
    parents = []

    class Spy(ToySpace):
        def mutate(self, arch, rng):
            parents.append(dict(arch))
            return space.mutate(arch, rng)

    st = RegularizedEvolution(Spy(), population_size=6, sample_size=3, seed=4)
    for i in range(6):  # initial population: random samples, no mutation
        st.tell(st.ask(), float(i % 4))
    assert parents == []
    for _ in range(30):
        pop = list(st.population)
        twin = np.random.default_rng()
        twin.bit_generator.state = st.rng.bit_generator.state
        picks = twin.integers(0, len(pop), size=3).tolist()
        expect = pop[max(picks, key=lambda i: pop[i][1])][0]
        child = st.ask()
        assert parents[-1] == expect
        assert sum(child[lab] != expect[lab] for lab in child) == 1  # one choice changed
        st.tell(child, OBJ(child))


def test_evolution_ages_out_the_oldest_not_the_worst():
    st = RegularizedEvolution(SPACE, population_size=3, sample_size=2, seed=0)
    told = []
    for score in (100.0, -5.0, 1.0, 2.0):  # the best comes first and must die first
        a = st.ask()
        st.tell(a, score)
        told.append((a, score))
    assert list(st.population) == told[1:]
    assert st.history == told
    assert st.best() == told[0]


def test_evolution_arguments():
    with pytest.raises(ValueError, match="sample_size \\(6\\) must not exceed population_size \\(5\\)"):
        RegularizedEvolution(SPACE, population_size=5, sample_size=6)
    with pytest.raises(ValueError, match="population_size must be a positive integer"):
        RegularizedEvolution(SPACE, population_size=0)


# ---------------------------------------------------------------------------- reinforce
def test_reinforce_warm_start_is_recorded_but_gives_no_gradient():
    st = Reinforce(SPACE, seed=0, baseline_decay=0.5)
    arch = SPACE.sample(np.random.default_rng(9))
    st.tell(arch, 3.0)  # the first reward sets the baseline
    assert st.history == [(arch, 3.0)] and st.baseline == 3.0
    before = {k: p.numpy().copy() for k, p in st.controller.named_parameters()}
    warm = SPACE.sample(np.random.default_rng(10))
    st.tell(warm, 7.0)  # advantage 4, but not its own sample: no step
    assert st.baseline == 5.0 and len(st.history) == 2
    for k, p in st.controller.named_parameters():
        assert np.array_equal(p.numpy(), before[k])
    st.tell(st.ask(), 9.0)  # its own sample: a step
    assert any(not np.array_equal(p.numpy(), before[k]) for k, p in st.controller.named_parameters())


def test_reinforce_categorical_starts_uniform_and_moves_towards_good_rewards():
    st = Reinforce(ToySpace(1, 4), lr=0.5, seed=0)
    assert st.log_prob({"c0": "o2"}) == pytest.approx(np.log(0.25))
    for _ in range(30):
        a = st.ask()
        st.tell(a, 1.0 if a["c0"] == "o2" else 0.0)
    assert st.log_prob({"c0": "o2"}) > np.log(0.8)


def test_reinforce_arguments():
    with pytest.raises(ValueError, match="controller must be 'categorical' or 'rnn'"):
        Reinforce(SPACE, controller="lstm")
    with pytest.raises(ValueError, match="baseline_decay must be in \\[0, 1\\)"):
        Reinforce(SPACE, baseline_decay=1.0)
    with pytest.raises(ValueError, match="cell must be 'lstm' or 'gru'"):
        Reinforce(SPACE, controller="rnn", cell="rnn")


# ---------------------------------------------------------------------------- constraints
class NoO0:
    """Refuses architectures whose c0 is 'o0'."""

    def allows(self, space, arch):
        return arch["c0"] != "o0"

    def why(self, space, arch):
        return "c0='o0' is not allowed"


class Nothing:
    def allows(self, space, arch):
        return False

    def why(self, space, arch):
        return "max_params=10 (this one has 1234)"


@pytest.mark.parametrize("make", [RandomSearch, RegularizedEvolution, Reinforce])
def test_constraint_filters_asks_and_counts_refusals(make):
    st = make(SPACE, seed=0, constraint=NoO0())
    asks = []
    for _ in range(40):
        a = st.ask()
        asks.append(a)
        st.tell(a, OBJ(a))
    assert all(a["c0"] != "o0" for a in asks)
    assert st.n_rejected > 0
    assert make(SPACE, seed=0).n_rejected == 0


@pytest.mark.parametrize("make", [RandomSearch, RegularizedEvolution, Reinforce])
def test_constraint_that_nothing_fits_raises(make):
    st = make(SPACE, seed=0, constraint=Nothing())
    with pytest.raises(ValueError, match=r"no architecture of toy fits: max_params=10 \(this one has 1234\)"):
        st.ask()
    assert st.n_rejected == MAX_MISSES


def test_constraint_must_have_allows_and_why():
    with pytest.raises(TypeError, match="allows\\(space, arch\\)"):
        RandomSearch(SPACE, constraint=lambda s, a: True)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize("make", [RandomSearch, RegularizedEvolution, Reinforce])
def test_bad_tells_are_refused_clearly(make):
    st = make(SPACE, seed=0)
    a = st.ask()
    with pytest.raises(ValueError, match="NaN"):
        st.tell(a, float("nan"))
    with pytest.raises(ValueError, match="finite"):
        st.tell(a, float("inf"))
    with pytest.raises(TypeError, match="score must be a real number, got str"):
        st.tell(a, "0.5")
    with pytest.raises(TypeError, match="arch must be a dict"):
        st.tell(list(a.items()), 0.5)
    with pytest.raises(ValueError, match="choice 'c0': 'o9' is not one of"):
        st.tell(dict(a, c0="o9"), 0.5)
    with pytest.raises(ValueError, match="unknown choice 'zz'"):
        st.tell(dict(a, zz=1), 0.5)
    assert st.history == []  # nothing half-recorded
    st.tell(a, np.float32(0.5))
    assert st.history == [(a, 0.5)]


def test_best_before_any_tell_and_empty_spaces():
    with pytest.raises(RuntimeError, match="no architecture has been told yet"):
        RandomSearch(SPACE).best()
    empty = ToySpace(0, 3)
    with pytest.raises(ValueError, match="empty space"):
        RandomSearch(empty)
    no_options = ToySpace(2, 0)
    with pytest.raises(ValueError, match="choice 'c0' of space 'toy' has no options"):
        RegularizedEvolution(no_options)


def test_best_is_the_earliest_among_ties_and_a_copy():
    st = RandomSearch(SPACE, seed=0)
    a, b = st.ask(), st.ask()
    st.tell(a, 1.0)
    st.tell(b, 1.0)
    arch, score = st.best()
    assert (arch, score) == (a, 1.0)
    arch["c0"] = "changed"
    assert st.history[0][0] == a


def test_query_loop():
    st = RegularizedEvolution(SPACE, seed=0)
    arch, score = query_loop(st, OBJ, 30)
    assert len(st.history) == 30 and score == max(s for _, s in st.history) == OBJ(arch)
    with pytest.raises(ValueError, match="n must be a non-negative integer"):
        query_loop(st, OBJ, -1)


def test_asked_architectures_are_fresh_copies():
    st = RegularizedEvolution(SPACE, population_size=2, sample_size=1, seed=0)
    for _ in range(4):
        a = st.ask()
        st.tell(a, OBJ(a))
        a["c0"] = "mutated by the caller"
    assert all(arch["c0"] != "mutated by the caller" for arch, _ in st.history)
    assert copy.deepcopy(st.population)
