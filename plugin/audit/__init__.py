"""The audit log: an append-only, hash-chained table of who did what to which patient's pump dose.

``record`` appends, ``verify_chain`` checks, ``export_records`` exports; ``itb audit`` drives the last two.
"""

from plugin.audit.log import AuditEntry, audit_logger, record
from plugin.audit.models import AuditRecord

__all__ = ["AuditEntry", "AuditRecord", "audit_logger", "record"]
