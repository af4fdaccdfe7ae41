"""A workspace: one directory holding config, data, versions, audit log, outbox and quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.config import SourceSpec, WorkspaceConfig, load_config
from engine.errors import ConfigError

CONFIG_NAME = "pgov.toml"


@dataclass(frozen=True)
class Workspace:
    root: Path
    config: WorkspaceConfig

    @classmethod
    def open(cls, root: Path | str) -> Workspace:
        root = Path(root).resolve()
        return cls(root=root, config=load_config(root / CONFIG_NAME))

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def versions_root(self) -> Path:
        return self.root / "versions"

    def versions_dir(self, jurisdiction: str, purpose: str) -> Path:
        return self.versions_root / jurisdiction / purpose

    @property
    def audit_dir(self) -> Path:
        return self.root / "audit"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def locks_dir(self) -> Path:
        return self.root / ".locks"

    @property
    def kyc_dir(self) -> Path:
        """Overrides and approvals: state that outlives a single version."""
        return self.root / "kyc"

    def path(self, relative: str) -> Path:
        p = Path(relative)
        return p if p.is_absolute() else self.root / p

    def source_path(self, name: str) -> Path:
        return self.path(self.source(name).path)

    def source(self, name: str) -> SourceSpec:
        try:
            return self.config.sources[name]
        except KeyError:
            raise ConfigError(
                f"{self.config_path}: no source '{name}' declared "
                f"(declared: {', '.join(self.config.sources)})"
            ) from None
