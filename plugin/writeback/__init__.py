"""Write-back: render the dose-change note, build the FHIR resources, and file them through a durable outbox.

Data flows one way: a ``NoteInput`` (check result + chart summary + the clinician's answers) is rendered
(``note``), turned into validated R4B resources (``resources``), queued in the app database (``outbox``)
and sent by ``run_once`` (``sender``) from a background runner or the ``itb outbox run`` command. A note
that was submitted is never lost: it waits in the database until the EHR confirms it.
"""
