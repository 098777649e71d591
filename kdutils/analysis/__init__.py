"""The analysis layer: statistics once (`stats`), the numbers the report chapters state
(`report`) and the few figure types (`plots`). It reads records; it never trains."""
