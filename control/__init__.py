"""The devyard control plane: API, auth, metadata database, object store and the client SDK.

Importing this package is cheap on purpose: the run worker and the CLI import
``control.client`` and must not pay for FastAPI or SQLAlchemy.
"""

__version__ = "0.1.0"
