"""The mirrors of this code location: one folder each, its `defs.yaml` a `SnowflakeMirrorComponent`."""
