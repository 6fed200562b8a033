"""Deploying cijobs to SCF: the template model, the Cloud API deployer and the
``serverless.yml`` generator. Runs on the deployer's machine, never in SCF (the
package zip leaves this sub-package unused)."""

from __future__ import annotations
