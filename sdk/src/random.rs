//! `getrandom` 0.3 on `wasm32-unknown-unknown` has no source of entropy of its own: crates
//! pick a backend with `--cfg getrandom_backend="custom"` (set for this workspace in
//! `.cargo/config.toml`) and the program provides this function. Ours asks the gateway
//! (`host.random-bytes`), so a plugin's hash maps are seeded like the host's.

/// Fills `len` bytes at `dest` with random bytes from the gateway.
///
/// # Safety
/// `getrandom` calls it with `dest` valid for writes of `len` bytes, as its custom-backend
/// contract states.
#[unsafe(no_mangle)]
unsafe extern "Rust" fn __getrandom_v03_custom(
    dest: *mut u8,
    len: usize,
) -> Result<(), getrandom::Error> {
    let mut filled = 0;
    while filled < len {
        let want = u32::try_from(len - filled).unwrap_or(u32::MAX).min(256);
        let bytes = crate::host::random_bytes(want);
        if bytes.is_empty() {
            return Err(getrandom::Error::UNSUPPORTED);
        }
        // SAFETY: `filled + bytes.len() <= len` (the host returns at most `want` bytes),
        // and `dest` is valid for `len` bytes by this function's contract.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                dest.add(filled),
                bytes.len().min(len - filled),
            );
        }
        filled += bytes.len().min(len - filled);
    }
    Ok(())
}
