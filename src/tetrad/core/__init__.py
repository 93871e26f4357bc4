"""Services every recipe shares, one module each: `config`, `seeding`, `rundir`, `checkpoint`,
`metrics`, `distributed`, `progress`, `plots`, `io`, `errors`. Nothing here knows about a
particular method. Import from the submodules (this package stays import-light so that
`tetrad --help` does not load torch)."""
