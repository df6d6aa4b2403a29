import { BaseSequencer, type TestSpecification } from 'vitest/node';

// Lab suites share one lab on one machine: run them in file-name order (01-, 02-, ...), so the
// cheap lifecycle suite runs first and each later suite finds the lab the earlier one left.
// Set on the root config, so unit files are sorted by name too (harmless).
export default class LabSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => a.moduleId.localeCompare(b.moduleId));
  }
}
