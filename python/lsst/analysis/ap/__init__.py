"""Template, science and difference image cutouts of DiaSources."""
