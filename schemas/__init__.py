"""Every message on a subject and every API body, as msgspec Structs. No I/O here."""
