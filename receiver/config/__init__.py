"""The routing file and the environment: `load` reads a routing file into the frozen dataclasses
of `types`, one module per section (`severity`, `people`, `rotations` and `windows`, `routes`,
`policies`, and `teams`, which reads each team's own sections with those), the YAML read with
line numbers by `yaml_file` and every problem located by the `yaml_source` reader; `matchers`
parses Alertmanager matchers and evaluates them with RE2, as Alertmanager does; `settings` reads
the environment.

May import: model, messages.
"""
