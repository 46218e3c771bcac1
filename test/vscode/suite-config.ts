/** The workspace of the suite: three quick stages (one with needs), and three run on request only. */
export const SUITE_CONFIG = `pipeline:
  name: demo
  maxParallel: 4
  stages:
    - name: build
      run:
        - echo "building demo"
        - printf '\\033[32mcompiled ok\\033[0m\\n'
    - name: lint
      run: echo "lint clean"
    - name: test
      needs: [build, lint]
      run: echo "12 tests passed"
    - name: slow
      when: [commit]
      run: for i in $(seq 1 200); do echo "slow-line-$i"; sleep 0.01; done
    - name: long
      when: [commit]
      run: sleep 120
    - name: storm
      when: [commit]
      run: [${Array.from({ length: 150 }, (_, i) => `echo step-${i}`).join(', ')}]

environments:
  staging: { runtime: process, promotion: auto }
  production: { runtime: process, promotion: manual }
`;
