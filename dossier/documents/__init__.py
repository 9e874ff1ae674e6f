"""Documents of a dossier: the write path, uploads (streamed and resumable), previews,
DICOM and the DICOM node, file types, stamping a signature picture, export."""
