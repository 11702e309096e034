"""Vault lifecycle: taking in seized coins (intake) with a signed chain-of-custody record, and
migrating to a successor vault.

Offline (the seized secrets): :mod:`.sources` parses them, :mod:`.discover` turns them into a
watch file with no secrets, :func:`.sweep.sign_plan` signs the sweep. Online (no secrets):
:mod:`.scan` finds the coins through a backend, :func:`.sweep.make_plan` builds the unsigned
sweep into the target vault, :func:`.sweep.broadcast` sends it; :mod:`.custody` makes, signs and
verifies the custody record. See docs/intake.md. Key rotation: :mod:`.migrate` plans the
migration of every coin to a successor vault and follows it in the coordinator (docs/rotation.md).
"""
