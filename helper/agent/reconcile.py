"""One pod's reconcile: read the wanted state (annotations) and the kernel's, make them equal.

Level-triggered: called for any hint that the pod may need work (a watch event,
the periodic verify, a retry); a reconcile that finds the rules right changes
nothing in the kernel, which is how a restarted agent adopts rules in place.
Between two periodic verifies, a pod whose plan and sandbox are the ones it last
made right is not looked at again in the kernel: a starting pod's watch events
(its phase, the kubelet's conditions, the agent's own condition coming back)
each cost a namespace entry and a ruleset listing before, while pods start.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import Enum

from helper.agent.metrics import Metrics
from helper.agent.pin import pinned
from helper.agent.pods import Condition, PodView, Store
from helper.agent.sandboxes import NodeNamespaceError, Sandbox, SandboxFinder
from helper.agent.status import StatusWriter
from helper.engine import Engine, NotAddressedError, Receipt
from helper.errors import PodnatError
from helper.host.base import Target
from helper.plan.model import RedirectPlan
from helper.plan.parse import InvalidPlanError, parse_plan
from helper.system import process_clock

_log = logging.getLogger("podnat.agent")


class Result(Enum):
    DONE = "done"  # converged (or nothing to do): forget the backoff
    RETRY = "retry"  # a failure: requeue with backoff
    WAIT = "wait"  # no sandbox yet (the pod is starting): requeue soon, backoff capped low
    SOON = "soon"  # a sandbox whose network is still being set up: requeue after SOON_S


SOON_S = 0.1
# A sandbox this young with no global address is still being wired (containerd 1.7 starts
# a user-namespaced pod's sandbox before the CNI plugin runs): no rules for no family, yet.
# Older, it is a pod that has none, and gets what `auto` makes of that (a warning, no family).
ADDRESS_WAIT_S = 10.0


@dataclass
class Memory:
    """What the agent did to one pod (its uid); lost on restart, and that is fine."""

    uid: str
    managed: bool = False
    # The sandbox the rules were last made right in: its process and namespace. A namespace
    # inode alone is not enough: the kernel reuses a freed one for the next namespace.
    sandbox: tuple[int, int, int] | None = None
    plan: RedirectPlan | None = None  # the plan last made right there
    receipt: Receipt | None = None  # the engine's word on it, for the next converge there
    checked: float = float("-inf")  # when the last converge began (time.monotonic)
    said: set[tuple[str, str]] = field(default_factory=set)  # one-time Events (reason, message)


@dataclass
class Policy:
    node: str
    backend: str = "auto"
    lock_timeout: float = 10.0
    also_manage: tuple[tuple[str, str, str], ...] = ()  # (namespace, label key, value)


class Reconciler:
    def __init__(
        self,
        policy: Policy,
        *,
        store: Store,
        finder: SandboxFinder,
        engine: Engine,
        status: StatusWriter,
        metrics: Metrics,
    ) -> None:
        self.policy, self.store, self.finder = policy, store, finder
        self.engine, self.status, self.metrics = engine, status, metrics
        self.memory: dict[str, Memory] = {}
        self._started = process_clock.now()
        self._verify_due = float("-inf")  # kernels checked before this are checked again

    def verify_all(self) -> None:
        """The periodic verify: each pod's next reconcile looks in the kernel again."""
        self._verify_due = time.monotonic()

    def managed_count(self) -> int:
        return sum(1 for m in list(self.memory.values()) if m.managed)

    def wanted(self, pod: PodView) -> bool:
        """The pod's namespace opted in (and is not excluded), or --also-manage selects it."""
        if self.store.opted_in(pod.namespace):
            return True
        return any(
            pod.namespace == ns and pod.labels.get(key) == value
            for ns, key, value in self.policy.also_manage
        )

    def reconcile(self, key: str) -> Result:
        pod = self.store.pod(key)
        memory = self.memory.get(key)
        if pod is None or (memory is not None and memory.uid != pod.uid):
            self.memory.pop(key, None)  # deleted, or a new pod of the same name
            memory = None
        if pod is None or pod.node != self.policy.node or pod.deleting or pod.finished:
            return Result.DONE
        if memory is None:
            memory = self.memory[key] = Memory(pod.uid)
        if not self._ours(pod, memory):
            return Result.DONE
        try:
            plan = parse_plan(pod.annotations)
        except InvalidPlanError as err:
            message = "invalid annotations, rules unchanged:\n" + "\n".join(err.lines())
            self._refuse(pod, memory, "InvalidAnnotations", message, event="RedirectsInvalid")
            return Result.DONE
        sandbox = self._sandbox(pod, memory)
        if not isinstance(sandbox, Sandbox):
            return sandbox
        memory.managed = True
        return self._converge(pod, memory, plan, sandbox)

    def _ours(self, pod: PodView, memory: Memory) -> bool:
        """Whether podnat may and should touch this pod's namespace at all."""
        if not self.wanted(pod):
            if memory.managed:
                memory.managed = False
                self._once(
                    pod,
                    memory,
                    "RedirectsUnmanaged",
                    "the namespace no longer opts in to podnat: its rules stay as they are "
                    "and are no longer verified or repaired",
                )
            return False
        if not pod.annotations and pod.condition is None and not memory.managed:
            return False  # never podnat's: not even its namespace is looked at
        if pod.host_network or pod.windows:
            what = "hostNetwork pod" if pod.host_network else "Windows pod"
            reason = "HostNetwork" if pod.host_network else "WindowsPod"
            self._refuse(pod, memory, reason, f"a {what} shares no namespace podnat may change")
            return False
        return True

    def _sandbox(self, pod: PodView, memory: Memory) -> Sandbox | Result:
        try:
            # Never a pass over /proc here: for a pod not seen yet, the controller's
            # SandboxWatch makes one for every starting pod at once.
            sandbox = self.finder.find(pod.uid, scan=False)
        except NodeNamespaceError as err:
            self._refuse(pod, memory, "HostNetwork", f"not touched: {err}")
            return Result.DONE
        except ValueError as err:  # a UID that is no UUID: looked up nowhere
            _log.warning("pod %s: %s", pod.key, err)
            return Result.DONE
        except PodnatError as err:  # /proc unreadable: an agent problem, retried
            _log.warning("pod %s: sandbox discovery: %s", pod.key, err)
            self.metrics.errors.inc()
            return Result.RETRY
        if sandbox is None:
            _log.debug("pod %s: no sandbox yet", pod.key)
            return Result.WAIT
        return sandbox

    def _converge(
        self, pod: PodView, memory: Memory, plan: RedirectPlan, sandbox: Sandbox
    ) -> Result:
        begun = process_clock.now()
        if memory.sandbox is not None and memory.sandbox != _identity(sandbox):
            _log.info(
                "pod %s: new sandbox (pid %d, netns inode %d)", pod.key, sandbox.pid, sandbox.inode
            )
            changed = Condition("False", "SandboxChanged", "a new sandbox is getting its rules")
            if self.status.condition(pod, changed):
                pod = pod._replace(condition=changed)  # so True is written after it, now
            memory.plan = None
        started = time.monotonic()
        engine_done = None  # when the engine returned (process clock): the rules were in
        try:
            with pinned(sandbox) as netns:
                if netns is None:
                    return Result.WAIT  # the sandbox went away between finding and opening
                target = Target(netns, self.policy.backend, lock_timeout=self.policy.lock_timeout)
                if plan.is_empty:
                    self._clean(pod, memory, sandbox, target)
                else:
                    engine_done = self._apply(pod, memory, plan, sandbox, target)
        except NotAddressedError:
            _log.debug("pod %s: its sandbox has no global address yet", pod.key)
            return Result.SOON
        except PodnatError as err:
            self.metrics.errors.inc()
            message = f"rules not applied: {err}"
            self.status.condition(pod, Condition("False", "ApplyFailed", message))
            self._once(pod, memory, "RedirectsFailed", message, warning=True)
            return Result.RETRY
        finally:
            self.metrics.apply_seconds.observe(time.monotonic() - started)
        if memory.sandbox != _identity(sandbox):
            self._first_rules(pod, sandbox, begun, engine_done)
        memory.sandbox, memory.plan, memory.checked = _identity(sandbox), plan, started
        memory.said.clear()  # converged: a failure seen before is news again
        return Result.DONE

    def _first_rules(
        self, pod: PodView, sandbox: Sandbox, begun: float, engine_done: float | None
    ) -> None:
        """A sandbox's first converge: how long after its start its rules were in and its
        condition written (the gate's cost); when this reconcile began (the time to find
        the sandbox and a worker for it) and when the engine was done (the rest is the
        condition's PATCH)."""
        started = process_clock.started(sandbox.start_ticks)
        if started < self._started:  # a sandbox older than this agent (adopted): no news
            return
        since = process_clock.now() - started
        self.metrics.sandbox_to_rules.observe(since)
        engine = ""
        if engine_done is not None:
            engine = f", the engine done at {(engine_done - started) * 1000:.0f} ms"
        _log.info(
            "pod %s: rules in %.0f ms after its sandbox started (its reconcile began at %.0f ms%s)",
            pod.key,
            since * 1000,
            (begun - started) * 1000,
            engine,
        )

    def _apply(
        self, pod: PodView, memory: Memory, plan: RedirectPlan, sandbox: Sandbox, target: Target
    ) -> float | None:
        """Converge and write the condition; when the engine returned (process clock), or
        None when the rules were trusted without it."""
        same = memory.sandbox == _identity(sandbox)
        # Made right here since the last periodic verify began: looked at again at the next.
        trusted = memory.plan == plan and same and memory.checked >= self._verify_due
        young = process_clock.age(sandbox.start_ticks) < ADDRESS_WAIT_S
        outcome, done = None, None
        if not trusted:
            receipt = memory.receipt if same else None
            outcome = self.engine.converge(plan, target, addressed=young, receipt=receipt)
            memory.receipt, done = outcome.receipt, process_clock.now()
        # The condition first: it gates the pod's readiness; the Event only tells.
        self.status.condition(pod, Condition("True", "Applied", plan.summary()))
        if outcome is None or not outcome.changed:
            return done
        if memory.plan == plan and same:
            self.metrics.repairs.inc()
            message = f"drift repaired: {outcome.summary}"
            self.status.event(pod, "RedirectsRepaired", message, warning=True)
        else:
            self.status.event(pod, "RedirectsApplied", outcome.summary)
        return done

    def _clean(self, pod: PodView, memory: Memory, sandbox: Sandbox, target: Target) -> None:
        if memory.sandbox != _identity(sandbox) or memory.plan is None or not memory.plan.is_empty:
            outcome = self.engine.cleanup(target)
            if outcome.summary.startswith("removed"):
                self.status.event(pod, "RedirectsRemoved", outcome.summary)
        self.status.condition(
            pod, Condition("True", "NoRedirects", "no podnat.io/redirect annotation: no rules")
        )

    def _refuse(
        self, pod: PodView, memory: Memory, reason: str, message: str, event: str = ""
    ) -> None:
        """Condition False with `reason`, and one Warning Event per distinct message."""
        self.status.condition(pod, Condition("False", reason, message))
        self._once(pod, memory, event or "RedirectsFailed", message, warning=True)

    def _once(
        self, pod: PodView, memory: Memory, reason: str, message: str, *, warning: bool = False
    ) -> None:
        if (reason, message) in memory.said:
            return
        if len(memory.said) > 32:  # bounded however often an admin flips annotations
            memory.said.clear()
        memory.said.add((reason, message))
        self.status.event(pod, reason, message, warning=warning)


def _identity(sandbox: Sandbox) -> tuple[int, int, int]:
    return sandbox.pid, sandbox.start_ticks, sandbox.inode
