"""The pharmacist's verification of submitted dose changes: queue, re-check, verify/reject/undo, notes."""
