"""The pinned Kubernetes tools (hack/env/tools.sh): where they are, and kubectl and helm
pointed at one cluster's kubeconfig."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.kit.paths import HACK


def tools_bin() -> Path:
    out = subprocess.run(
        [str(HACK / "env" / "tools.sh"), "bin-dir"], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip())


@dataclass(frozen=True)
class Tools:
    bin_dir: Path
    kubeconfig: Path
    helm_home: Path | None = None  # a throwaway HELM_*_HOME, else helm's own

    def env(self) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        if self.helm_home is not None:
            for kind in ("CACHE", "CONFIG", "DATA"):
                env[f"HELM_{kind}_HOME"] = str(self.helm_home / kind.lower())
        return env

    def run(
        self,
        tool: str,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: int = 120,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            input=stdin,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def helm(
        self, *args: str, check: bool = True, timeout: int = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, check=check, timeout=timeout)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: int = 120
    ) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, stdin=stdin, check=check, timeout=timeout)
