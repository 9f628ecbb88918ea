// Activity and meter listeners see every host in the process: one test at a time keeps each test's spans and
// measurements its own.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
