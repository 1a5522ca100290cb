// Linked into the test executables of sanitizer builds only (tests/CMakeLists.txt).
// Open MPI unloads its MCA components, and with them libpmix, in MPI_Finalize, before
// LeakSanitizer looks for leaks at exit: the frames of what they allocated then print as
// "<unknown module>" and no suppression can name them. Making dlclose a no-op keeps every
// module mapped until the process ends, so the stacks symbolize and lsan.supp can name the
// Open MPI / PMIx / hwloc functions instead of suppressing whole libraries.
extern "C" __attribute__((visibility("default"))) int dlclose(void*) { return 0; }
