"""unicrm: a self-hosted unified API for CRM projects."""

__version__ = "0.1.0"
