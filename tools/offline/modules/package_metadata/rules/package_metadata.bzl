"""package_metadata() as a plain filegroup: enough for gazelle's generated go_repository BUILDs."""

def package_metadata(name, visibility = None, **_kwargs):
    # applicable_licenses = [] breaks the cycle that the default package license would create.
    native.filegroup(name = name, visibility = visibility, applicable_licenses = [])
